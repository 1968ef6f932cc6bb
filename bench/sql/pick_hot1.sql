-- 1 hot account: the debited side is always acct:1
\set a 1
\set b random(2, 10000)
\set amt random(1, 1000)
