// i18n.test.mjs: the young person's page's message catalogue: every
// language has every key English has (no silent fallback), the same
// placeholders, and a chip for every tag and flag of taxonomy.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CATALOGUES, LANGS } from '../../client-web/js/i18n.js';

const here = dirname(fileURLToPath(import.meta.url));
const tax = JSON.parse(readFileSync(join(here, '..', '..', 'client-web', 'taxonomy.json'), 'utf8'));
const holes = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

test('every language is complete, with the same placeholders', () => {
  const en = CATALOGUES.en;
  assert.deepEqual(Object.keys(CATALOGUES).sort(), Object.keys(LANGS).sort());
  for (const [lang, cat] of Object.entries(CATALOGUES)) {
    assert.deepEqual(Object.keys(cat).sort(), Object.keys(en).sort(), lang);
    for (const k of Object.keys(en)) {
      assert.ok(cat[k].trim().length > 0, `${lang} ${k}`);
      assert.deepEqual(holes(cat[k]), holes(en[k]), `${lang} ${k}`);
    }
  }
});

test('every intake chip of taxonomy.json has words in the catalogue', () => {
  for (const g of tax.groups) for (const t of g.tags) if (t.chip) assert.ok(CATALOGUES.en[`tag.${t.id}`], t.id);
  for (const f of tax.risk_flags) assert.ok(CATALOGUES.en[`flag.${f.id}`], f.id);
  for (const a of tax.age_bands) assert.ok(CATALOGUES.en[`age.${a.id}`], a.id);
});

test('every safety card has its title and steps in the catalogue', async () => {
  const { CARDS } = await import('../../client-web/js/cards.js');
  for (const [id, n] of Object.entries(CARDS)) {
    assert.ok(CATALOGUES.en[`card.${id}.title`], id);
    for (let i = 1; i <= n; i++) assert.ok(CATALOGUES.en[`card.${id}.${i}`], `${id}.${i}`);
    assert.equal(CATALOGUES.en[`card.${id}.${n + 1}`], undefined, `${id} has more steps than CARDS says`);
  }
});
