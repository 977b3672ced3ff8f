-- Where the WAL stands: on the primary, its insert position (at or past every commit already
-- acknowledged); on a streaming replica, the position it has replayed. Read by an instance after
-- each write it makes or hears of, and every 50 ms of each replica (src/db/replicas.rs), so that a
-- read goes to a replica only once the replica shows every write to that product.
SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
             ELSE pg_current_wal_insert_lsn() END)::text
