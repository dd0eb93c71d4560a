// hash-report.test.mjs: "no images, only hashes" (docs/hashing.md), in
// Chromium against the real daemon (chat.envelopes = strict): the young
// person's page refuses a picture pasted or dropped into the chat, explains
// why and opens the fingerprint route; a reference picture chosen there is
// hashed on the device (SHA-256 and MD5 exact, PDQ within 10 bits of the
// published hash), only the fingerprints are shown as what will be shared,
// and they reach the counsellor's console as a hash report — no picture, no
// preview — whose hash list export has the documented form. A file that is
// not a picture is refused with a clear message. Each screen is scanned with
// axe-core.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { organisation } from './org.mjs';
import { awaitStepMargin } from './staff.mjs';
import { launch, noBrowser } from './browser.mjs';
import { consoleDaemon, youngChatAccepted, look, storedBytes, staffConsole } from './console.mjs';
import { shot } from './a11y.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const FIXTURES = join(here, '..', 'fixtures', 'pdq');
const PICTURE = join(FIXTURES, 'images', 'bridge-mods', 'aaa-orig.jpg');
const published = readFileSync(join(FIXTURES, 'expected.csv'), 'utf8').split('\n')
  .filter((l) => l.startsWith('bridge-mods/aaa-orig.jpg,')).map((l) => l.split(',')[1]);
const bits = (a, b) => [...Buffer.from(a, 'hex')].reduce((n, x, i) => n + [...(x ^ Buffer.from(b, 'hex')[i]).toString(2)].filter((c) => c === '1').length, 0);

test('a picture never leaves the young person\'s page: pasting or dropping one is refused, its fingerprints reach the counsellor', { skip: noBrowser, timeout: 240000 }, async () => {
  const { srv, link, url } = await consoleDaemon('[queue]\nrouting = both\noffer_timeout = 60\n');
  const opened = [];
  const track = (c) => { opened.push(c); return c; };
  const browser = await launch();
  const problems = [];
  const a11y = [];
  try {
    await awaitStepMargin(25);
    const org = await organisation(srv, track, 'hashadmin');
    const { page: staff } = await staffConsole(browser, problems, srv, url, org, 'hana', ['counsellor'], { label: 'counsellor', shift: true });

    const { young, conv } = await youngChatAccepted(browser, problems, srv, staff, { topic: 'image_shared' });

    // Pasting and dropping a picture: refused, explained, nothing sent.
    const picture = readFileSync(PICTURE);
    const events = (type) => young.evaluate(async ({ type, b64 }) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'me.jpg', { type: 'image/jpeg' }));
      const box = document.getElementById('text');
      const e = type === 'paste' ? new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true })
        : new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true });
      box.dispatchEvent(e);
      return e.defaultPrevented;
    }, { type, b64: picture.toString('base64') });
    assert.equal(await events('paste'), true, 'the paste is stopped');
    await young.locator('#banner:not([hidden])', { hasText: 'pictures and videos cannot be sent in this chat' }).waitFor();
    await young.locator('#hash-panel').waitFor();
    await young.click('#hash-cancel');
    assert.equal(await events('drop'), true, 'the drop is stopped');
    await young.locator('#hash-panel').waitFor();
    assert.equal(await young.locator('#text').inputValue(), '');
    assert.equal(await young.locator('li.mine').count(), 0, 'nothing was sent');

    // Not a picture: a clear message, nothing to send.
    await young.setInputFiles('#hash-file', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not a picture at all') });
    await young.locator('#hash-result .error', { hasText: 'That is not a picture or a video' }).waitFor();
    assert.equal(await young.locator('#hash-send').isHidden(), true);

    // The reference picture, hashed on the device.
    await young.setInputFiles('#hash-file', PICTURE);
    await young.locator('#hash-status', { hasText: 'only these codes' }).waitFor({ timeout: 60000 });
    const codes = await young.locator('#hash-result code').allInnerTexts();
    const sha256 = createHash('sha256').update(picture).digest('hex'), md5 = createHash('md5').update(picture).digest('hex');
    assert.equal(codes[0], sha256);
    assert.equal(codes[1], md5);
    const nearest = Math.min(...published.map((p) => bits(p, codes[2])));
    assert.ok(nearest <= 10, `PDQ within 10 bits of the published hash (got ${nearest})`);
    assert.equal(await young.locator('#hash-panel img, #hash-panel canvas, #hash-panel video').count(), 0, 'no preview of the picture');
    assert.equal(await young.locator('#hash-age').inputValue(), '13_15', 'the age band from the intake');
    await look(young, 'young-hash', a11y);
    await young.click('#hash-send');
    await young.locator('#hash-status', { hasText: 'Your counsellor has the fingerprints, not the picture' }).waitFor({ timeout: 15000 });

    // The counsellor gets the fingerprints and nothing else.
    const report = staff.locator('li.theirs.hashes');
    await report.waitFor({ timeout: 15000 });
    const text = await report.innerText();
    assert.match(text, /Hash report, age 13–15/);
    assert.ok(text.includes(sha256) && text.includes(md5) && text.includes(codes[2]));
    assert.match(text, /no picture was sent/);
    assert.equal(await staff.locator('.chat img, .chat video, .chat canvas, .chat object, .chat embed').count(), 0);
    await look(staff, 'console-hash-report', a11y);

    // The hash list for hash-sharing partners.
    const [dl] = await Promise.all([staff.waitForEvent('download'), report.locator('button', { hasText: 'Export hash list' }).click()]);
    const list = JSON.parse(readFileSync(await dl.path(), 'utf8'));
    assert.equal(list.format, 'helpline-hash-list-v1');
    assert.equal(list.conversation, conv);
    assert.ok(Number.isSafeInteger(list.seq) && list.seq > 0);
    assert.ok(!Number.isNaN(Date.parse(list.reported_at)));
    assert.equal(list.referral, null);
    assert.equal(list.age_band, '13_15');
    assert.deepEqual(list.hashes.map((h) => h.hash_type), ['sha256', 'md5', 'pdq']);
    assert.deepEqual(list.hashes.map((h) => h.value), [sha256, md5, codes[2]]);
    for (const h of list.hashes) {
      assert.equal(h.file, 0);
      assert.equal(h.media_type, 'image/jpeg');
      assert.equal(h.size, picture.length);
    }
    assert.ok(Number.isInteger(list.hashes[2].quality) && list.hashes[2].quality >= 80);
    assert.deepEqual(Object.keys(list).sort(), ['age_band', 'conversation', 'format', 'hashes', 'referral', 'reported_at', 'seq']);

    assert.deepEqual(problems, []);
    assert.deepEqual(a11y, [], 'no serious accessibility problem');
    // The server holds ciphertext only: not the picture, not even the hashes.
    const bytes = storedBytes(srv);
    assert.ok(!bytes.includes(picture.subarray(1000, 1064)), 'no picture bytes stored');
    assert.ok(!bytes.toString('latin1').includes(sha256), 'no plaintext hash stored');
  } catch (e) {
    for (const [i, p] of browser.contexts().flatMap((c) => c.pages()).entries()) await shot(p, `hash-report-failure-${i}`).catch(() => {});
    throw e;
  } finally {
    for (const c of opened) c.close();
    await browser.close();
    link.close();
    await srv.stop();
  }
});
