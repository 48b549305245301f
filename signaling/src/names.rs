//! Room and peer names: validated before they are used anywhere (logs, SDP, other
//! clients' pages). The page shows them with textContent only, never as HTML.

/// Longest room name, in characters.
pub const MAX_ROOM_LEN: usize = 64;
/// Longest display name, in characters.
pub const MAX_NAME_LEN: usize = 32;

/// A room name appears in URLs (`/r/<room>`): ASCII letters, digits, `-` and `_` only,
/// so it never needs escaping there.
pub fn validate_room(room: &str) -> Result<(), String> {
    if room.is_empty() || room.len() > MAX_ROOM_LEN {
        return Err(format!("room name must be 1 to {MAX_ROOM_LEN} characters"));
    }
    if !room
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("room name may contain only letters a-z, A-Z, digits, '-' and '_'".into());
    }
    Ok(())
}

/// A display name: letters and digits of any script, spaces (not leading, trailing or
/// doubled) and `-_.'`. No control, format or bidi-override characters, so a name cannot
/// disguise itself as another or break a layout.
pub fn validate_name(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_LEN {
        return Err(format!("name must be 1 to {MAX_NAME_LEN} characters"));
    }
    if name.starts_with(' ') || name.ends_with(' ') || name.contains("  ") {
        return Err("name must not start or end with a space or contain two in a row".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '\'')))
    {
        return Err(format!(
            "name may contain only letters, digits, spaces and - _ . ' (not {:?})",
            bad
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms() {
        for ok in ["a", "standup", "Team-7_x", &"r".repeat(64)] {
            assert!(validate_room(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "../x",
            "<script>",
            "é",
            &"r".repeat(65),
            "a/b",
            "a?b",
        ] {
            assert!(validate_room(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        for ok in ["Ada", "Ada Lovelace", "Zoë", "李雷", "o'brien", "x-1_2.3"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            " ada",
            "ada ",
            "a  b",
            "<b>ada</b>",
            "ada\u{202e}",
            "a\nb",
            "a\"b",
            &"n".repeat(33),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
