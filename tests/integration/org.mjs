// org.mjs: an organisation set up for end-to-end encryption tests as a
// helpline would set it up: the root key from `helplinectl init`, an admin
// whose device the root certified (helplinectl certify-device), and staff
// whose devices the admin's device certified (device.certify). Clients are
// passed to track() so a test can close them all at the end.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { ctl, enrolled, totp, stepNow, awaitStepMargin, origin } from './staff.mjs';
import { ContactClient, StaffClient } from '../../client-web/js/helpline.js';
import { registerDevice, certifyDevice } from '../../client-web/js/secure.js';
import * as E from '../../client-web/js/e2e.js';

const keep = (c) => c;

export async function staffClient(srv, acct, track = keep, step = stepNow()) {
  const c = track(new StaffClient({ url: `ws://127.0.0.1:${srv.port}/ws`, WebSocket, wsOptions: { origin: origin(srv) }, backoff: { minMs: 50, maxMs: 200 } }));
  await c.login(acct.username, acct.password, totp(acct.secret, step));
  return c;
}

export const contactClient = (srv, track = keep) => track(new ContactClient({ url: `ws://127.0.0.1:${srv.port}/ws`, WebSocket, backoff: { minMs: 50, maxMs: 200 } }));

export function staffIdOf(srv, username) {
  const list = JSON.parse(ctl(srv, 'list-staff', '--json'));
  return list.find((s) => s.username === username).id;
}

// Runs helplinectl init in dir (before the daemon starts, which reads the
// organisation keys at start-up); the root key file is dir/root-key.json.
export function initOrg(dir) {
  ctl({ dir }, 'init', '--root-key-out', join(dir, 'root-key.json'));
}

// The admin side: {rootPk, rootFile, admin (client), adminDevice}.
export async function organisation(srv, track = keep, adminName = 'e2eadmin') {
  const rootFile = join(srv.dir, 'root-key.json');
  const root = JSON.parse(readFileSync(rootFile, 'utf8'));
  const rootPk = E.unb64(root.public, 32);
  await awaitStepMargin(20);
  const adminAcct = await enrolled(srv, adminName, 'admin');
  const admin = await staffClient(srv, adminAcct, track);
  const ad = await registerDevice(admin, staffIdOf(srv, adminName));
  ctl(srv, 'certify-device', '--root-key', rootFile, String(ad.id));
  const mine = (await admin.devices()).find((d) => d.device === ad.id);
  ad.cert = E.unb64(mine.cert);
  ad.issuer = null;
  return { rootPk, rootFile, admin, adminDevice: ad };
}

// A member of staff with a certified device: {acct, id, client, device}.
export async function counsellor(srv, o, username, role = 'counsellor', track = keep) {
  const acct = await enrolled(srv, username, role);
  const id = staffIdOf(srv, username);
  const client = await staffClient(srv, acct, track);
  const dev = await registerDevice(client, id);
  const waiting = (await o.admin.devices(id)).find((d) => d.device === dev.id);
  assert.equal(waiting.cert, null);
  dev.cert = await certifyDevice(o.admin, { keys: o.adminDevice.keys, cert: o.adminDevice.cert }, waiting, { role: role === 'supervisor' ? E.ROLE.SUPERVISOR : E.ROLE.COUNSELLOR });
  dev.issuer = o.adminDevice.cert;
  return { acct, id, client, device: dev };
}
