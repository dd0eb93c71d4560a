// a11y.mjs: accessibility checks for any page of the service in Chromium
// (the young person's page, the staff console): an axe-core scan against
// WCAG 2.2 A/AA, screenshots saved by the test run, and the checks axe
// cannot make from the DOM alone: target sizes, visible and unobscured
// focus (by really pressing Tab), no horizontal scrolling at a width, and
// motion under prefers-reduced-motion. Every helper takes a Playwright page
// and returns a list of problems as readable strings (empty when all is
// well), so a test asserts `deepEqual(problems, [])` and the failure says
// what is wrong and where.
//
// The pages have a strict CSP (no inline script), so axe-core can only be
// injected into a context made with { bypassCSP: true }: use scanContext().
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
export const AXE_PATH = require.resolve('axe-core/axe.min.js');
export const SCREENSHOTS = process.env.HL_SCREENSHOTS ?? join(tmpdir(), 'helpline-screenshots');
export const WCAG_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'];
export const BLOCKING = ['serious', 'critical'];

/** A browser context that lets axe-core be injected despite the CSP. */
export function scanContext(browser, options = {}) {
  return browser.newContext({ ...options, bypassCSP: true });
}

/**
 * Runs axe-core on the page as it is now. Returns the violations whose
 * impact is in `impacts` (serious and critical by default), each as a
 * readable line: "label: rule (impact) help — target, target".
 */
export async function axeScan(page, label, { impacts = BLOCKING, tags = WCAG_TAGS, exclude = [] } = {}) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    await page.addScriptTag({ path: AXE_PATH });
    if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
      throw new Error('axe-core could not be injected: make the context with scanContext() (bypassCSP)');
    }
  }
  const verbose = Boolean(process.env.HL_A11Y_VERBOSE);
  const { violations, others, incomplete } = await page.evaluate(async ({ tags, exclude, verbose }) => {
    const context = { include: [document], exclude: exclude.map((s) => [s]) };
    const brief = (v) => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary })),
    });
    const r = await window.axe.run(context, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] });
    // Verbose: every rule (best practices too), for a person to read.
    const all = verbose ? await window.axe.run(context, { resultTypes: ['violations', 'incomplete'] }) : { violations: [], incomplete: [] };
    return { violations: r.violations.map(brief), others: all.violations.map(brief), incomplete: all.incomplete.map(brief) };
  }, { tags, exclude, verbose });
  // HL_A11Y_VERBOSE=1: print, without failing, what every rule found and what axe could not decide.
  for (const v of others) console.error(`[a11y] ${label}: ${v.id} (${v.impact}) ${v.help} — ${v.nodes.map((n) => n.target).join(', ')}`);
  for (const v of incomplete) console.error(`[a11y] ${label}: needs review: ${v.id} ${v.help} — ${v.nodes.map((n) => n.target).join(', ')}`);
  return violations.filter((v) => impacts.includes(v.impact)).map((v) =>
    `${label}: ${v.id} (${v.impact}) ${v.help} — ${v.nodes.map((n) => n.target).join(', ')}` +
    (v.nodes[0]?.summary ? ` [${v.nodes[0].summary.replace(/\s+/g, ' ').trim()}]` : ''));
}

/** Saves a full-page PNG as <dir>/<name>.png; returns its path. */
export async function shot(page, name, dir = SCREENSHOTS) {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name.replace(/[^\w.-]+/g, '-')}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Nothing wider than the viewport: no horizontal scrolling (reflow, 1.4.10). */
export async function overflow(page, label) {
  const r = await page.evaluate(() => {
    const w = document.documentElement.clientWidth;
    const wide = [...document.querySelectorAll('body *')].filter((e) => {
      const b = e.getBoundingClientRect();
      return b.width > 0 && (b.right > w + 0.5 || b.left < -0.5) && getComputedStyle(e).position !== 'absolute';
    }).slice(0, 5).map((e) => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}${e.className ? '.' + String(e.className).split(' ').join('.') : ''}`);
    return { scroll: document.documentElement.scrollWidth, w, wide };
  });
  return r.scroll <= r.w ? [] : [`${label}: page is ${r.scroll}px wide in a ${r.w}px viewport (${r.wide.join(', ')})`];
}

/**
 * Every visible control at least min x min CSS pixels (2.5.8), except links
 * inside a sentence (the inline exception). Returns the too-small ones.
 */
export async function targetSizes(page, label, min = 24) {
  const small = await page.evaluate((min) => {
    const inline = (e) => e.tagName === 'A' && [...e.parentElement.childNodes].some((n) => n !== e && n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    return [...document.querySelectorAll('a[href], button, input, select, textarea, summary, [role="button"], [role="radio"], [role="checkbox"], [role="link"], [tabindex]:not([tabindex="-1"])')]
      .filter((e) => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden' && !inline(e))
      .map((e) => ({ e, b: e.getBoundingClientRect() }))
      .filter(({ b }) => b.width < min - 0.01 || b.height < min - 0.01)
      .map(({ e, b }) => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''} "${(e.textContent || e.getAttribute('aria-label') || '').trim().slice(0, 30)}" ${b.width.toFixed(1)}x${b.height.toFixed(1)}`);
  }, min);
  return small.map((s) => `${label}: target smaller than ${min}px: ${s}`);
}

/**
 * Presses Tab through every focusable control of the page (until focus
 * comes back round) and checks each one shows a focus indicator (an
 * outline of at least 2px, or a box shadow) and is not entirely hidden by
 * sticky or fixed content (2.4.7, 2.4.11). Returns the problems and how
 * many controls were reached.
 */
export async function focusCheck(page, label, { max = 200 } = {}) {
  await page.evaluate(() => {
    window.__a11ySeen = new Set();
    document.activeElement?.blur?.();
    window.scrollTo(0, 0);
  });
  // Start from the top of the document.
  await page.evaluate(() => {
    const s = document.createElement('span');
    s.tabIndex = -1;
    document.body.prepend(s);
    s.focus();
    s.remove();
  });
  const problems = [];
  let reached = 0;
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const r = await page.evaluate(() => {
      const e = document.activeElement;
      if (!e || e === document.body || e === document.documentElement) return { done: false, none: true };
      if (window.__a11ySeen.has(e)) return { done: true };
      window.__a11ySeen.add(e);
      const name = `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''} "${(e.textContent || e.getAttribute('aria-label') || '').trim().slice(0, 30)}"`;
      const cs = getComputedStyle(e);
      const ring = (cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) >= 2) || (cs.boxShadow && cs.boxShadow !== 'none');
      const b = e.getBoundingClientRect();
      const W = innerWidth, H = innerHeight;
      const pts = [[0.5, 0.5], [0.1, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.9]]
        .map(([fx, fy]) => [b.left + b.width * fx, b.top + b.height * fy])
        .filter(([x, y]) => x >= 0 && y >= 0 && x < W && y < H);
      const seen = pts.some(([x, y]) => { const at = document.elementFromPoint(x, y); return at && (at === e || e.contains(at) || at.contains(e)); });
      return { done: false, name, ring, seen, visible: e.matches(':focus-visible') };
    });
    if (r.done) break;
    if (r.none) continue;
    reached++;
    if (!r.visible) problems.push(`${label}: ${r.name} does not match :focus-visible after Tab`);
    if (!r.ring) problems.push(`${label}: ${r.name} has no visible focus indicator`);
    if (!r.seen) problems.push(`${label}: ${r.name} is hidden by other content when focused`);
  }
  await page.evaluate(() => { delete window.__a11ySeen; });
  return { problems, reached };
}

/**
 * With prefers-reduced-motion: reduce, nothing moves: no running animation
 * and no transition or animation longer than `maxS` seconds on any element.
 */
export async function reducedMotion(page, label, maxS = 0.01) {
  await page.emulateMedia({ reducedMotion: 'reduce' });
  try {
    const r = await page.evaluate((maxS) => {
      const secs = (v) => Math.max(0, ...v.split(',').map((x) => (x.trim().endsWith('ms') ? parseFloat(x) / 1000 : parseFloat(x)) || 0));
      const out = [];
      if (!matchMedia('(prefers-reduced-motion: reduce)').matches) out.push('prefers-reduced-motion: reduce is not in effect');
      for (const a of document.getAnimations()) {
        const t = a.effect?.getComputedTiming?.();
        if (a.playState === 'running' && t && t.duration > maxS * 1000) out.push(`animation ${a.animationName ?? a.transitionProperty ?? ''} of ${t.duration}ms running`);
      }
      for (const e of [document.documentElement, ...document.querySelectorAll('body, body *')]) {
        for (const pseudo of [null, '::before', '::after']) {
          const cs = getComputedStyle(e, pseudo);
          const tr = secs(cs.transitionDuration), an = cs.animationName !== 'none' ? secs(cs.animationDuration) : 0;
          if (tr > maxS || an > maxS) out.push(`${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}${pseudo ?? ''} transition ${cs.transitionDuration} animation ${cs.animationName} ${cs.animationDuration}`);
        }
      }
      if (getComputedStyle(document.documentElement).scrollBehavior === 'smooth') out.push('smooth scrolling');
      return out.slice(0, 10);
    }, maxS);
    return r.map((s) => `${label}: reduced motion: ${s}`);
  } finally {
    await page.emulateMedia({ reducedMotion: null });
  }
}
