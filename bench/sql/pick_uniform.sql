-- uniform: two distinct accounts drawn from all 10,000 (ids 1..10000 are acct:1..acct:10000)
\set a random(1, 10000)
\set b random(1, 9999)
\set b CASE WHEN :b >= :a THEN :b + 1 ELSE :b END
\set amt random(1, 1000)
