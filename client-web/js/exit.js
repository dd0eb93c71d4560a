// exit.js: Quick exit, loaded before anything else on every page and
// depending on nothing. The button is a plain link to a neutral site, so it
// works even before (or without) any script; with script, it also blanks the
// page at once, drops what the page holds, and replaces the history entry so
// Back does not return here. Pressing Esc three times (within 2 s) does the
// same.
const DEFAULT_EXIT = 'https://www.bbc.co.uk/weather';

export function quickExit(url) {
  const target = url || document.getElementById('exit')?.getAttribute('href') || DEFAULT_EXIT;
  try {
    document.documentElement.replaceChildren();
    document.title = '';
    try { sessionStorage.clear(); localStorage.clear(); } catch { /* storage may be off */ }
    window.dispatchEvent(new Event('helpline:exit'));
  } finally {
    window.location.replace(target);
  }
}

let presses = [];
document.addEventListener('keydown', (e) => {
  if (e.key !== 'Escape') return;
  const now = Date.now();
  presses = presses.filter((t) => now - t < 2000).concat(now);
  if (presses.length >= 3) quickExit();
}, true);

document.addEventListener('click', (e) => {
  const a = e.target.closest?.('#exit');
  if (!a) return;
  e.preventDefault();
  quickExit(a.getAttribute('href'));
}, true);
