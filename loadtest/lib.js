// Shared helpers of the k6 scenarios: configuration from the environment, run-scoped accounts, and a
// transfer that retries like a real payment client (same Idempotency-Key on any error or timeout).
import http from "k6/http";
import { Counter, Rate } from "k6/metrics";
import { check, sleep } from "k6";
// The run's end (scripts/load.py) checks the invariants; this file only drives load.

export const BASE_URL = __ENV.BASE_URL || "http://127.0.0.1:8080";
export const API_KEY = __ENV.API_KEY;
export const RUN_ID = __ENV.RUN_ID || `${Date.now()}`;
export const ACCOUNTS = parseInt(__ENV.ACCOUNTS || "100", 10);
export const HOT_ACCOUNTS = parseInt(__ENV.HOT_ACCOUNTS || "3", 10);

// Every 201, tagged with its transaction id: the runner (scripts/load.py) compares the set of acknowledged
// ids with the transactions the ledger holds for the run, so replays and retries count once.
export const acknowledged = new Counter("ledger_acknowledged");
export const refused = new Counter("ledger_refused");                 // expected 4xx refusals (floors)
export const unexpected = new Rate("ledger_unexpected");              // 5xx, timeouts after retries, odd 4xx
export const retries = new Counter("ledger_retries");

const headers = () => ({
  "Content-Type": "application/json",
  Authorization: `Bearer ${API_KEY}`,
});

export function code(index) {
  return `load-${RUN_ID}:acct-${index}`;
}

export const WORLD = () => `load-${RUN_ID}:world`;

// Opens the run's accounts and funds them from the run's own world account, so that the run's accounts
// always sum to zero on their own: the end-of-run check needs nothing else.
export function openAccounts(count, fundEach) {
  if (!API_KEY) throw new Error("API_KEY is required");
  const open = (body) => {
    const response = http.post(`${BASE_URL}/v1/accounts`, JSON.stringify(body), { headers: headers() });
    if (response.status !== 201) throw new Error(`opening ${body.code}: ${response.status} ${response.body}`);
  };
  open({ code: WORLD(), currency: "BDT", min_balance: null });
  for (let i = 0; i < count; i++) {
    open({ code: code(i), currency: "BDT", min_balance: 0 });
    const key = `fund-${RUN_ID}-${i}`;
    const body = { postings: [{ account: WORLD(), amount: -fundEach }, { account: code(i), amount: fundEach }] };
    const response = post(body, key);
    if (response.status !== 201) throw new Error(`funding ${code(i)}: ${response.status} ${response.body}`);
    acknowledged.add(1, { transaction: response.json("id") });
  }
  return { runId: RUN_ID, accounts: count };
}

function post(body, key) {
  return http.post(`${BASE_URL}/v1/transactions`, JSON.stringify(body), {
    headers: { ...headers(), "Idempotency-Key": key },
    timeout: "10s",
    tags: { name: "POST /v1/transactions" },
  });
}

// One payment, retried with the same key on 5xx, 409 in-use and network errors: it takes effect at most once.
export function transfer(source, destination, amount, key) {
  const body = { postings: [{ account: source, amount: -amount }, { account: destination, amount: amount }] };
  for (let attempt = 1; attempt <= 5; attempt++) {
    const response = post(body, key);
    if (response.status === 201) {
      acknowledged.add(1, { transaction: response.json("id") });
      unexpected.add(false);
      return response;
    }
    if (response.status === 422) {
      const ok = check(response, { "refusal is insufficient-funds": (r) => r.json("type") === "/problems/insufficient-funds" });
      (ok ? refused : unexpected).add(1);
      if (ok) unexpected.add(false);
      return response;
    }
    if (response.status !== 0 && response.status < 500 && response.status !== 409 && response.status !== 429) {
      unexpected.add(true);
      return response;
    }
    retries.add(1);
    sleep(Math.min(0.05 * 2 ** attempt, 1));
  }
  unexpected.add(true);
  return null;
}

export function pick(hotShare) {
  const index = Math.random() < hotShare ? Math.floor(Math.random() * HOT_ACCOUNTS) : Math.floor(Math.random() * ACCOUNTS);
  return code(index);
}

export function pickPair(hotShare) {
  const source = pick(hotShare);
  let destination = pick(0);
  while (destination === source) destination = pick(0);
  return [source, destination];
}

export function uniqueKey() {
  return `${RUN_ID}-${__VU}-${__ITER}-${Math.random().toString(36).slice(2)}`;
}

export const baseThresholds = {
  ledger_unexpected: ["rate<0.01"],
  "http_req_duration{name:POST /v1/transactions}": ["p(95)<250", "p(99)<500"],
};
