// The HTTP load of `make bench`: POST /v1/transactions, one transfer per request, through k6.
//
// Environment (set by bench/run.py):
//   BASE_URL, API_KEY            the service under test and its bearer key
//   SCENARIO                     uniform | hot10 | hot1 | replay (uniform accounts, REPLAY_FRACTION repeats)
//   MODE                         closed (constant-vus: VUS clients, each sends its next request on an answer)
//                                rate   (constant-arrival-rate: RATE requests/s, open loop)
//   VUS, DURATION, RATE          load shape; DURATION like "10s"
//   KEY_PREFIX                   makes every Idempotency-Key of this run unique (per run and phase)
//   REPLAY_FRACTION              share of requests that repeat an earlier key with the same body (replay only)
//   SUMMARY_FILE                 where handleSummary writes the JSON summary that bench/run.py reads
//
// Every request but a replay carries a fresh Idempotency-Key; a replay repeats a key (with its exact body)
// that this VU already sent and saw answered, so it never races the original (no 409 in flight).
import exec from 'k6/execution';
import http from 'k6/http';
import { Counter, Trend } from 'k6/metrics';

const BASE_URL = __ENV.BASE_URL;
const SCENARIO = __ENV.SCENARIO || 'uniform';
const MODE = __ENV.MODE || 'closed';
const RATE = Number(__ENV.RATE || 0);
const KEY_PREFIX = __ENV.KEY_PREFIX || 'bench';
const REPLAY_FRACTION = SCENARIO === 'replay' ? Number(__ENV.REPLAY_FRACTION || 0.2) : 0;
const ACCOUNTS = 10000;
const HOT = 10;
const HEADERS_BASE = {
  Authorization: `Bearer ${__ENV.API_KEY}`,
  'Content-Type': 'application/json',
};

// 201 answers that created a transaction (the count checked against new rows), 201 replays, the rest.
const createdNew = new Counter('created_new');
const createdReplay = new Counter('created_replay');
const answeredError = new Counter('answered_error'); // an HTTP answer other than 201 (503 included)
const unavailable = new Counter('answered_503'); // the service gave up waiting (pool or statement timeout)
const transportError = new Counter('transport_error'); // no answer at all (reset, refused, ...)
const timedOut = new Counter('timed_out'); // no answer within the request timeout
const replayNotMarked = new Counter('replay_not_marked'); // a repeat answered 201 without Idempotent-Replayed
const latency = new Trend('latency', true); // request sent -> answer read (k6's http_req_duration)
const latencyIntended = new Trend('latency_intended', true); // intended send time -> answer (rate mode)
const lateness = new Trend('send_lateness', true); // how late the request left compared with its schedule

const closed = {
  executor: 'constant-vus',
  vus: Number(__ENV.VUS || 1),
  duration: __ENV.DURATION || '5s',
  gracefulStop: '30s', // in-flight requests finish and are counted when the duration is up
};
const open = {
  executor: 'constant-arrival-rate',
  rate: RATE,
  timeUnit: '1s',
  duration: __ENV.DURATION || '5s',
  preAllocatedVUs: Number(__ENV.VUS || 64),
  maxVUs: Number(__ENV.MAX_VUS || 256),
  gracefulStop: '30s',
};

export const options = {
  scenarios: { load: MODE === 'rate' ? open : closed },
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(50)', 'p(95)', 'p(99)', 'count'],
  discardResponseBodies: true,
  systemTags: ['status'], // fewer tags per sample: less CPU for the generator
};

const recent = []; // this VU's answered requests that may be replayed: [key, body]
let sequence = 0;

function pick() {
  let a;
  let b;
  if (SCENARIO === 'hot10') {
    a = 1 + Math.floor(Math.random() * HOT);
    b = HOT + 1 + Math.floor(Math.random() * (ACCOUNTS - HOT));
  } else if (SCENARIO === 'hot1') {
    a = 1;
    b = 2 + Math.floor(Math.random() * (ACCOUNTS - 1));
  } else {
    a = 1 + Math.floor(Math.random() * ACCOUNTS);
    b = 1 + Math.floor(Math.random() * (ACCOUNTS - 1));
    if (b >= a) b += 1;
  }
  const amount = 1 + Math.floor(Math.random() * 1000);
  return JSON.stringify({
    postings: [
      { account: `acct:${a}`, amount: -amount },
      { account: `acct:${b}`, amount },
    ],
  });
}

export default function () {
  let key;
  let body;
  let replay = false;
  if (REPLAY_FRACTION > 0 && recent.length > 0 && Math.random() < REPLAY_FRACTION) {
    [key, body] = recent[Math.floor(Math.random() * recent.length)];
    replay = true;
  } else {
    sequence += 1;
    key = `${KEY_PREFIX}-${exec.vu.idInTest}-${sequence}`;
    body = pick();
  }
  let scheduled = 0;
  if (MODE === 'rate') {
    scheduled = exec.scenario.startTime + (exec.scenario.iterationInTest * 1000) / RATE;
  }
  const sentAt = Date.now();
  const res = http.post(`${BASE_URL}/v1/transactions`, body, {
    headers: Object.assign({ 'Idempotency-Key': key }, HEADERS_BASE),
    timeout: '30s',
    responseType: 'none',
  });
  latency.add(res.timings.duration);
  if (MODE === 'rate') {
    // Date.now() has millisecond resolution: the lateness part is +-1 ms, the rest is k6's own timing.
    const late = Math.max(0, sentAt - scheduled);
    lateness.add(late);
    latencyIntended.add(late + res.timings.blocked + res.timings.connecting + res.timings.duration);
  }
  if (res.status === 201) {
    const marked = res.headers['Idempotent-Replayed'] === 'true';
    if (marked) createdReplay.add(1);
    else createdNew.add(1);
    if (replay && !marked) replayNotMarked.add(1);
    if (!replay && REPLAY_FRACTION > 0) {
      recent.push([key, body]);
      if (recent.length > 100) recent.shift();
    }
  } else if (res.status === 0) {
    if (res.error_code === 1050) timedOut.add(1);
    else transportError.add(1);
  } else {
    answeredError.add(1);
    if (res.status === 503) unavailable.add(1);
  }
}

export function handleSummary(data) {
  const out = {};
  out[__ENV.SUMMARY_FILE] = JSON.stringify(data);
  return out;
}
