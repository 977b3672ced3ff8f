-- GET /health: the cheapest statement that proves a connection can run one.
SELECT 'ok'::text
