//! Interop and robustness tests (filled in below).
