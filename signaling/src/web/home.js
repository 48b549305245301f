// Home page: a random room name and its link to copy.
const $ = (id) => document.getElementById(id);

function randomRoom() {
  // 12 characters of a 32-letter alphabet without look-alikes: 60 bits, unguessable.
  const alphabet = 'abcdefghjkmnpqrstuvwxyz23456789';
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  let name = '';
  for (const b of bytes) name += alphabet[b % alphabet.length];
  return `${name.slice(0, 4)}-${name.slice(4, 8)}-${name.slice(8)}`;
}

function show(room) {
  const url = `${location.origin}/r/${room}`;
  $('room-link').value = url;
  $('open-room').href = `/r/${room}`;
  $('copied').textContent = '';
}

show(randomRoom());
$('another').addEventListener('click', () => show(randomRoom()));
$('copy').addEventListener('click', async () => {
  try {
    await navigator.clipboard.writeText($('room-link').value);
    $('copied').textContent = 'Link copied.';
  } catch {
    $('room-link').select();
    $('copied').textContent = 'Press Ctrl+C to copy the selected link.';
  }
});
$('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const room = $('join-room').value.trim();
  if (/^[A-Za-z0-9_-]{1,64}$/.test(room)) location.href = `/r/${room}`;
});
