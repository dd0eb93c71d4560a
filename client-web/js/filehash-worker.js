// filehash-worker.js: runs filehash.js's hashFile off the page's main
// thread (module worker; see hashFileInWorker). One job a message:
// { file, opts } in, { ok: true, result } or { ok: false, code, exact } out.
import { hashFile } from './filehash.js';

self.onmessage = async ({ data }) => {
  try {
    self.postMessage({ ok: true, result: await hashFile(data.file, data.opts ?? {}) });
  } catch (e) {
    self.postMessage({ ok: false, code: e?.code ?? 'read_failed', exact: e?.exact ?? null });
  }
};
