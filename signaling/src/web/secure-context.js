// Browsers open the camera and microphone only on https or localhost: on a plain http
// page from another machine, say why instead of failing silently. (Self-contained so the
// room page's own modules need not know.)
if (!window.isSecureContext) {
  const notice = document.getElementById('insecure-notice');
  if (notice) {
    notice.textContent = 'This page is not secure (plain http): your browser will not open the camera or microphone here. ' +
      'The server needs HTTPS (tls_cert and tls_key, or a reverse proxy); see the README.';
    notice.hidden = false;
  }
}
