// Mix: payments plus the reads a wallet app makes (balance, statement, transaction list).
import http from "k6/http";
import { check } from "k6";
import { API_KEY, BASE_URL, baseThresholds, code, openAccounts, pickPair, transfer, uniqueKey, ACCOUNTS } from "./lib.js";

export const options = {
  summaryTrendStats: ["avg", "min", "med", "max", "p(95)", "p(99)"],
  scenarios: { mix: { executor: "constant-vus", vus: parseInt(__ENV.VUS || "16", 10), duration: __ENV.DURATION || "30s" } },
  thresholds: { ...baseThresholds, "http_req_duration{name:GET statement}": ["p(99)<500"] },
};

export function setup() {
  return openAccounts(ACCOUNTS, 1000000);
}

export default function () {
  const roll = Math.random();
  if (roll < 0.5) {
    const [source, destination] = pickPair(0);
    transfer(source, destination, 1 + Math.floor(Math.random() * 100), uniqueKey());
    return;
  }
  const account = code(Math.floor(Math.random() * ACCOUNTS));
  const params = { headers: { Authorization: `Bearer ${API_KEY}` } };
  let response;
  if (roll < 0.7) response = http.get(`${BASE_URL}/v1/accounts/${account}`, { ...params, tags: { name: "GET account" } });
  else if (roll < 0.9) response = http.get(`${BASE_URL}/v1/accounts/${account}/postings?limit=20`, { ...params, tags: { name: "GET statement" } });
  else response = http.get(`${BASE_URL}/v1/transactions?account=${account}&limit=20`, { ...params, tags: { name: "GET transactions" } });
  check(response, { "read is 200": (r) => r.status === 200 });
}
