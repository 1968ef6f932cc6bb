// Smoke: a few clients for a few seconds; every answer is a 201 or a floor refusal.
import { baseThresholds, openAccounts, pickPair, transfer, uniqueKey, ACCOUNTS } from "./lib.js";

export const options = {
  summaryTrendStats: ["avg", "min", "med", "max", "p(95)", "p(99)"],
  scenarios: { smoke: { executor: "constant-vus", vus: 4, duration: __ENV.DURATION || "10s" } },
  thresholds: baseThresholds,
};

export function setup() {
  return openAccounts(ACCOUNTS, 100000);
}

export default function () {
  const [source, destination] = pickPair(0);
  transfer(source, destination, 1 + Math.floor(Math.random() * 100), uniqueKey());
}
