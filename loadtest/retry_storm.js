// Idempotent-retry storm: every payment is sent by several clients at once with the same key (a client
// library retrying aggressively); each must take effect exactly once.
import { openAccounts, pickPair, transfer, ACCOUNTS, RUN_ID } from "./lib.js";

export const options = {
  summaryTrendStats: ["avg", "min", "med", "max", "p(95)", "p(99)"],
  scenarios: {
    storm: { executor: "per-vu-iterations", vus: parseInt(__ENV.VUS || "20", 10), iterations: parseInt(__ENV.ITERATIONS || "50", 10) },
  },
  thresholds: { ledger_unexpected: ["rate<0.01"] },
};

export function setup() {
  return openAccounts(ACCOUNTS, 1000000);
}

export default function () {
  // Five VUs share each key: VU n uses payment floor((n-1)/5) of this iteration.
  const group = Math.floor((__VU - 1) / 5);
  const key = `${RUN_ID}-storm-${group}-${__ITER}`;
  const seed = group * 7919 + __ITER * 104729;
  const source = `load-${RUN_ID}:acct-${seed % ACCOUNTS}`;
  const destination = `load-${RUN_ID}:acct-${(seed + 1) % ACCOUNTS}`;
  transfer(source, destination, 1 + (seed % 50), key);
}
