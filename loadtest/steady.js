// Steady: a constant arrival rate (RATE per second) for DURATION, latency from the intended send time.
import { baseThresholds, openAccounts, pickPair, transfer, uniqueKey, ACCOUNTS } from "./lib.js";

export const options = {
  summaryTrendStats: ["avg", "min", "med", "max", "p(95)", "p(99)"],
  scenarios: {
    steady: {
      executor: "constant-arrival-rate",
      rate: parseInt(__ENV.RATE || "200", 10),
      timeUnit: "1s",
      duration: __ENV.DURATION || "60s",
      preAllocatedVUs: 50,
      maxVUs: 200,
    },
  },
  thresholds: { ...baseThresholds, dropped_iterations: ["count<10"] },
};

export function setup() {
  return openAccounts(ACCOUNTS, 1000000);
}

export default function () {
  const [source, destination] = pickPair(0);
  transfer(source, destination, 1 + Math.floor(Math.random() * 100), uniqueKey());
}
