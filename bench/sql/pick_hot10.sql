-- 10 hot accounts: the debited side is always one of acct:1..acct:10, the credited side any other account
\set a random(1, 10)
\set b random(11, 10000)
\set amt random(1, 1000)
