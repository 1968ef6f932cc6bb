// Spike: from a trickle to many times the rate and back; the service must shed nothing and recover.
import { baseThresholds, openAccounts, pickPair, transfer, uniqueKey, ACCOUNTS } from "./lib.js";

const peak = parseInt(__ENV.RATE || "400", 10);
export const options = {
  summaryTrendStats: ["avg", "min", "med", "max", "p(95)", "p(99)"],
  scenarios: {
    spike: {
      executor: "ramping-arrival-rate",
      startRate: Math.max(1, Math.floor(peak / 10)),
      timeUnit: "1s",
      preAllocatedVUs: 100,
      maxVUs: 400,
      stages: [
        { target: Math.floor(peak / 10), duration: "10s" },
        { target: peak, duration: "5s" },
        { target: peak, duration: "20s" },
        { target: Math.floor(peak / 10), duration: "5s" },
        { target: Math.floor(peak / 10), duration: "10s" },
      ],
    },
  },
  thresholds: { ledger_unexpected: ["rate<0.01"], "http_req_duration{name:POST /v1/transactions}": ["p(99)<2000"] },
};

export function setup() {
  return openAccounts(ACCOUNTS, 1000000);
}

export default function () {
  const [source, destination] = pickPair(0);
  transfer(source, destination, 1 + Math.floor(Math.random() * 100), uniqueKey());
}
