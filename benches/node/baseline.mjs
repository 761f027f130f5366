// Baseline for benches/fanout.rs: the same fan-out sent with Node's `web-push`
// package, used the way its README suggests (sendNotification per
// subscription), with 64 requests in flight over keep-alive connections.
//
//   node benches/node/baseline.mjs <subscriptions.json> <count>
//
// The JSON file (written by the Rust benchmark) holds the VAPID key pair and
// subject, the plaintext payload (base64), TTL, urgency, topic and the
// subscriptions. The sink's CA comes from NODE_EXTRA_CA_CERTS. Prints one line
// of JSON: {"sent":N,"ok":N,"failed":N,"seconds":S,"rate":R}.

import { readFileSync } from 'node:fs';
import https from 'node:https';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const webpush = require('web-push');

const [file, countArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: node baseline.mjs <subscriptions.json> [count]');
  process.exit(2);
}
const input = JSON.parse(readFileSync(file, 'utf8'));
const subs = input.subscriptions.slice(0, countArg ? Number(countArg) : undefined);
const payload = Buffer.from(input.payload_b64, 'base64');
const IN_FLIGHT = input.in_flight ?? 64;

webpush.setVapidDetails(input.vapid.subject, input.vapid.public_key, input.vapid.private_key);
const agent = new https.Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
const options = { TTL: input.ttl, urgency: input.urgency, topic: input.topic, agent, timeout: 30000 };

let next = 0;
let ok = 0;
let failed = 0;
let firstError = null;

async function lane() {
  while (next < subs.length) {
    const sub = subs[next++];
    try {
      const res = await webpush.sendNotification(sub, payload, options);
      if (res.statusCode === 201) ok++;
      else failed++;
    } catch (e) {
      failed++;
      firstError ??= String(e.statusCode ?? e.message ?? e);
    }
  }
}

const start = process.hrtime.bigint();
await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, subs.length) }, lane));
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
agent.destroy();
console.log(JSON.stringify({ sent: subs.length, ok, failed, seconds, rate: ok / seconds, first_error: firstError }));
