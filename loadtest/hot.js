// Hot accounts: 90% of the payments leave one of HOT_ACCOUNTS accounts, which also run dry (floor refusals).
import { openAccounts, pickPair, transfer, uniqueKey, ACCOUNTS } from "./lib.js";

export const options = {
  summaryTrendStats: ["avg", "min", "med", "max", "p(95)", "p(99)"],
  scenarios: { hot: { executor: "constant-vus", vus: parseInt(__ENV.VUS || "32", 10), duration: __ENV.DURATION || "30s" } },
  thresholds: { ledger_unexpected: ["rate<0.01"], "http_req_duration{name:POST /v1/transactions}": ["p(99)<1000"] },
};

export function setup() {
  return openAccounts(ACCOUNTS, 20000);
}

export default function () {
  const [source, destination] = pickPair(0.9);
  transfer(source, destination, 1 + Math.floor(Math.random() * 100), uniqueKey());
}
