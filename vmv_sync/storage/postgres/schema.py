"""The PostgreSQL schema, its migrations, and the one-round-trip batch commit function.

Why a server-side function: group commit must cost ONE round trip per batch, and a
batch is not a blind INSERT: each request needs the next sequence numbers of its
workshop (under a row lock, so two store instances never reuse one), its fencing
epoch checked and its client-id claims checked against the claims another instance
may have committed. ``vmv_commit_batch`` does all of it inside the statement's own
transaction and returns one row per request, in order: its last seq, or why it was
refused alone. Workshop rows are locked in sorted order, so two instances committing
batches over the same workshops never deadlock.

Migrations: ``MIGRATIONS`` is a tuple of statement lists; ``vmv_schema.version`` is
how many ran. They run under a transaction-level advisory lock, so two processes
starting at once migrate once. Append new versions; never edit a released one.
"""

from __future__ import annotations

__all__ = ("MIGRATIONS", "SCHEMA_VERSION", "LOCK_KEY", "COMMIT_BATCH_SQL")

#: ``pg_advisory_xact_lock`` key of migrations ("vmv-sync" as a number)
LOCK_KEY = 0x766D7673796E63

_COMMIT_FUNCTION = r"""
CREATE OR REPLACE FUNCTION vmv_commit_batch(
    p_ws text[], p_counts int[], p_epochs bigint[], p_data bytea[],
    p_claim_req int[], p_claim_ids bigint[], p_claim_owners text[], p_now double precision)
RETURNS TABLE (out_seq bigint, out_refusal text, out_value bigint, out_holder text)
LANGUAGE plpgsql AS $fn$
DECLARE
    n int := coalesce(array_length(p_ws, 1), 0);
    nc int := coalesce(array_length(p_claim_req, 1), 0);
    ids text[];
    lasts bigint[];
    a_req int[] := '{}';
    a_base bigint[] := '{}';
    a_pos int[] := '{}';
    c_ws text[] := '{}';
    c_id bigint[] := '{}';
    c_owner text[] := '{}';
    i int; j int; k int; c int; pos int := 1;
    e bigint; held text; bad text; bad_value bigint; bad_holder text;
BEGIN
    IF n = 0 THEN RETURN; END IF;
    SELECT array_agg(DISTINCT x ORDER BY x) INTO ids FROM unnest(p_ws) AS x;
    INSERT INTO workshops (workshop_id, last_seq, created_at)
        SELECT x, 0, p_now FROM unnest(ids) AS x ORDER BY x ON CONFLICT (workshop_id) DO NOTHING;
    SELECT array_agg(l.last_seq ORDER BY l.workshop_id) INTO lasts FROM (
        SELECT w.workshop_id, w.last_seq FROM workshops w
        WHERE w.workshop_id = ANY (ids) ORDER BY w.workshop_id FOR UPDATE) AS l;
    FOR i IN 1..n LOOP
        k := array_position(ids, p_ws[i]);
        bad := NULL;
        IF p_epochs[i] IS NOT NULL THEN
            SELECT we.epoch INTO e FROM workshop_epochs we WHERE we.workshop_id = p_ws[i] FOR SHARE;
            IF FOUND AND e > p_epochs[i] THEN
                bad := 'epoch'; bad_value := e; bad_holder := NULL;
            END IF;
        END IF;
        IF bad IS NULL AND nc > 0 THEN
            FOR c IN 1..nc LOOP
                CONTINUE WHEN p_claim_req[c] <> i;
                held := NULL;
                FOR j IN 1..coalesce(array_length(c_ws, 1), 0) LOOP
                    IF c_ws[j] = p_ws[i] AND c_id[j] = p_claim_ids[c] THEN
                        held := c_owner[j];
                        EXIT;
                    END IF;
                END LOOP;
                IF held IS NULL THEN
                    SELECT ci.owner INTO held FROM client_ids ci
                    WHERE ci.workshop_id = p_ws[i] AND ci.client_id = p_claim_ids[c];
                END IF;
                IF held IS NOT NULL AND held <> p_claim_owners[c] THEN
                    bad := 'claim'; bad_value := p_claim_ids[c]; bad_holder := held;
                    EXIT;
                END IF;
            END LOOP;
        END IF;
        IF bad IS NULL THEN
            a_req := a_req || i; a_base := a_base || lasts[k]; a_pos := a_pos || pos;
            lasts[k] := lasts[k] + p_counts[i];
            FOR c IN 1..nc LOOP
                IF p_claim_req[c] = i THEN
                    c_ws := c_ws || p_ws[i]; c_id := c_id || p_claim_ids[c]; c_owner := c_owner || p_claim_owners[c];
                END IF;
            END LOOP;
            out_seq := lasts[k]; out_refusal := NULL; out_value := NULL; out_holder := NULL;
        ELSE
            out_seq := lasts[k]; out_refusal := bad; out_value := bad_value; out_holder := bad_holder;
        END IF;
        RETURN NEXT;
        pos := pos + p_counts[i];
    END LOOP;
    INSERT INTO updates (workshop_id, seq, data, stored_at)
        SELECT p_ws[r.i], r.base + g, p_data[r.pos + g - 1], p_now
        FROM unnest(a_req, a_base, a_pos) AS r(i, base, pos),
             LATERAL generate_series(1, p_counts[r.i]) AS g;
    IF array_length(c_ws, 1) > 0 THEN
        INSERT INTO client_ids (workshop_id, client_id, owner, claimed_at)
            SELECT t.w, t.c, t.o, p_now FROM unnest(c_ws, c_id, c_owner) AS t(w, c, o)
            ON CONFLICT (workshop_id, client_id) DO NOTHING;
    END IF;
    IF array_length(a_req, 1) > 0 THEN
        UPDATE workshops AS w SET last_seq = t.l, last_activity = p_now
            FROM unnest(ids, lasts) AS t(id, l)
            WHERE w.workshop_id = t.id AND w.workshop_id IN (SELECT p_ws[r] FROM unnest(a_req) AS r);
    END IF;
END
$fn$
"""

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # The per-workshop sequence counter: never decreases, so a seq is never reused
        # (compaction deletes rows, never the counter). history_from: updates with
        # seq <= it are deleted.
        """CREATE TABLE workshops (
            workshop_id   text PRIMARY KEY,
            last_seq      bigint NOT NULL,
            history_from  bigint NOT NULL DEFAULT 0,
            created_at    double precision NOT NULL,
            last_activity double precision
        )""",
        """CREATE TABLE updates (
            workshop_id text NOT NULL,
            seq         bigint NOT NULL,
            data        bytea NOT NULL,
            stored_at   double precision NOT NULL,
            PRIMARY KEY (workshop_id, seq)
        )""",
        # At most two rows per workshop: the latest snapshot and the history base.
        """CREATE TABLE snapshots (
            workshop_id text NOT NULL,
            upto_seq    bigint NOT NULL,
            data        bytea NOT NULL,
            created_at  double precision NOT NULL,
            PRIMARY KEY (workshop_id, upto_seq)
        )""",
        # Who first wrote under each Yjs client id; never touched by compaction.
        """CREATE TABLE client_ids (
            workshop_id text NOT NULL,
            client_id   bigint NOT NULL,
            owner       text NOT NULL,
            claimed_at  double precision NOT NULL,
            PRIMARY KEY (workshop_id, client_id)
        )""",
        # The fencing epoch per workshop: never deleted, never decreases.
        """CREATE TABLE workshop_epochs (
            workshop_id text PRIMARY KEY,
            epoch       bigint NOT NULL
        )""",
        # The directory: invites, revocations, the token secret.
        """CREATE TABLE workshop_access (
            workshop_id    text PRIMARY KEY,
            invite_code    text NOT NULL,
            facilitator_id text NOT NULL,
            created_at     double precision NOT NULL
        )""",
        """CREATE TABLE revoked_participants (
            workshop_id    text NOT NULL,
            participant_id text NOT NULL,
            revoked_at     double precision NOT NULL,
            PRIMARY KEY (workshop_id, participant_id)
        )""",
        """CREATE TABLE store_settings (
            name  text PRIMARY KEY,
            value text NOT NULL
        )""",
        _COMMIT_FUNCTION,
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

#: the batch commit: one statement, one round trip (an implicit transaction)
COMMIT_BATCH_SQL = (
    "SELECT out_seq, out_refusal, out_value, out_holder FROM vmv_commit_batch("
    "$1::text[], $2::int[], $3::bigint[], $4::bytea[], $5::int[], $6::bigint[], $7::text[], $8::float8)"
)
