namespace DBSync.Schema;

/// <summary>
/// The SQL of the DDL capture (<see cref="DBSyncOptions.CaptureSchemaChanges"/>): three event triggers that write every
/// DDL statement touching a table or an enum type into the logical replication stream, as one transactional logical
/// message (prefix <see cref="Prefix"/>, JSON content, <see cref="DdlMessage"/> reads it) at the statement's place among
/// the row changes.
/// </summary>
/// <remarks>
/// <para>
/// Everything lives in schema <c>dbsync</c>: the table <c>dbsync.ddl_shape</c> keeps the last known shape (columns,
/// primary key, replica identity, partition parent) of every ordinary and partitioned table, so that a statement's
/// message carries each concerned table's shape before and after it; the functions run as their owner (a superuser,
/// <c>SECURITY DEFINER</c> with a fixed <c>search_path</c>), so that DDL by any role is captured. A statement only ever
/// reads the catalog rows of the tables it concerns, never all tables.
/// </para>
/// <para>
/// <c>ddl_command_end</c> writes one message per statement with commands (<c>"event":"ddl_command_end"</c>);
/// <c>sql_drop</c> one per statement that drops tables (<c>"event":"sql_drop"</c>, each dropped table with
/// <c>"after":null</c>); <c>table_rewrite</c> only notes the rewritten tables in a transaction-local setting
/// (<c>dbsync.ddl_rewritten</c>) that the statement's <c>ddl_command_end</c> reads and clears. Errors propagate: a
/// failing capture fails the DDL, it never loses a statement silently.
/// </para>
/// </remarks>
internal static class DdlCaptureSql
{
    /// <summary>The prefix of the logical messages the capture writes.</summary>
    public const string Prefix = "dbsync.ddl";

    /// <summary>The version of the capture, of its message format (<c>"v"</c>) and of <c>dbsync.ddl_version()</c>. The SQL
    /// below spells it as a literal (the body of <c>ddl_version()</c> and each message's <c>'v', 1</c>): change them
    /// together.</summary>
    public const int Version = 1;

    /// <summary>
    /// Installs the capture, or replaces it when already there (one transaction is the caller's: <see cref="DdlCapture"/>
    /// runs it in one, under an advisory lock). Needs a superuser, or a managed service's equivalent that may create
    /// event triggers. The stored shapes are brought up to date with the catalog (rows of tables no longer there are
    /// deleted). A schema <c>dbsync</c> or table <c>dbsync.ddl_shape</c> that exists already must belong to the
    /// installing role or to a superuser: the functions run with elevated rights and must not touch what a lesser role
    /// controls.
    /// </summary>
    public const string Install = """
        DO $check$
        DECLARE
            v_object pg_catalog.text;
            v_owner pg_catalog.text;
        BEGIN
            SELECT o.what, r.rolname::pg_catalog.text
              INTO v_object, v_owner
              FROM (SELECT 'schema dbsync' AS what, n.nspowner AS owner
                      FROM pg_catalog.pg_namespace n
                     WHERE n.nspname = 'dbsync'
                    UNION ALL
                    SELECT 'table dbsync.ddl_shape', c.relowner
                      FROM pg_catalog.pg_class c
                      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = 'dbsync' AND c.relname = 'ddl_shape') AS o
              JOIN pg_catalog.pg_roles r ON r.oid = o.owner
             WHERE NOT r.rolsuper AND r.rolname <> CURRENT_USER
             LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'DBSync DDL capture: % belongs to role "%", neither a superuser nor the installing role "%"', v_object, v_owner, CURRENT_USER
                    USING HINT = 'The capture''s functions run with the installer''s rights; have the installing role own it (ALTER ... OWNER TO) and install again.';
            END IF;
        END
        $check$;

        DROP EVENT TRIGGER IF EXISTS dbsync_ddl_command_end;
        DROP EVENT TRIGGER IF EXISTS dbsync_ddl_sql_drop;
        DROP EVENT TRIGGER IF EXISTS dbsync_ddl_table_rewrite;

        CREATE SCHEMA IF NOT EXISTS dbsync;

        CREATE TABLE IF NOT EXISTS dbsync.ddl_shape (
            relid pg_catalog.oid PRIMARY KEY,
            shape pg_catalog.jsonb NOT NULL
        );
        -- Finds the partitions a DETACH PARTITION took off a table (only partitions have a parent).
        CREATE INDEX IF NOT EXISTS ddl_shape_parent ON dbsync.ddl_shape ((shape OPERATOR(pg_catalog.->>) 'parent'))
            WHERE (shape OPERATOR(pg_catalog.->>) 'parent') IS NOT NULL;
        REVOKE ALL ON TABLE dbsync.ddl_shape FROM PUBLIC;

        DROP FUNCTION IF EXISTS dbsync.ddl_version();
        DROP FUNCTION IF EXISTS dbsync.ddl_table_shape(pg_catalog.oid);
        DROP FUNCTION IF EXISTS dbsync.ddl_enum_shape(pg_catalog.oid);
        DROP FUNCTION IF EXISTS dbsync.ddl_command_end();
        DROP FUNCTION IF EXISTS dbsync.ddl_emit(pg_catalog.text, pg_catalog.jsonb, pg_catalog.jsonb, pg_catalog.jsonb);
        DROP FUNCTION IF EXISTS dbsync.ddl_sql_drop();
        DROP FUNCTION IF EXISTS dbsync.ddl_table_rewrite();

        -- The version of the capture. InstalledVersionQuery reads it from the function's source, so that the check needs
        -- neither the schema to exist nor any right on it: keep the body "SELECT <version>".
        CREATE FUNCTION dbsync.ddl_version() RETURNS pg_catalog.int4
            LANGUAGE sql IMMUTABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
            AS 'SELECT 1';

        -- The shape of a table of interest (ordinary or partitioned, not temporary, not in a system schema or in dbsync),
        -- or NULL for any other relation or one that is gone.
        CREATE FUNCTION dbsync.ddl_table_shape(p_relid pg_catalog.oid) RETURNS pg_catalog.jsonb
            LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
            AS $fn$
        BEGIN
            RETURN (
                SELECT pg_catalog.jsonb_build_object(
                           'oid', c.oid::pg_catalog.int8,
                           'schema', n.nspname::pg_catalog.text,
                           'name', c.relname::pg_catalog.text,
                           'kind', c.relkind::pg_catalog.text,
                           'columns', COALESCE((
                               SELECT pg_catalog.jsonb_agg(
                                          pg_catalog.jsonb_build_object(
                                              'num', a.attnum::pg_catalog.int4,
                                              'name', a.attname::pg_catalog.text,
                                              'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
                                              'type_oid', a.atttypid::pg_catalog.int8,
                                              'typmod', a.atttypmod,
                                              'not_null', a.attnotnull,
                                              'default', CASE WHEN a.atthasdef THEN (
                                                  SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid)
                                                    FROM pg_catalog.pg_attrdef d
                                                   WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum) END)
                                          || CASE WHEN a.attgenerated <> ''
                                                  THEN pg_catalog.jsonb_build_object('generated', a.attgenerated::pg_catalog.text)
                                                  ELSE '{}'::pg_catalog.jsonb END
                                          ORDER BY a.attnum)
                                 FROM pg_catalog.pg_attribute a
                                WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]'::pg_catalog.jsonb),
                           'primary_key', COALESCE((
                               SELECT pg_catalog.jsonb_agg(a.attname::pg_catalog.text ORDER BY k.ord)
                                 FROM pg_catalog.pg_index i
                                 CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY AS k(attnum, ord)
                                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                                WHERE i.indrelid = c.oid AND i.indisprimary AND k.ord <= i.indnkeyatts), '[]'::pg_catalog.jsonb),
                           'replica_identity', c.relreplident::pg_catalog.text,
                           'identity_index', CASE WHEN c.relreplident = 'i' THEN COALESCE((
                               SELECT pg_catalog.jsonb_agg(a.attname::pg_catalog.text ORDER BY k.ord)
                                 FROM pg_catalog.pg_index i
                                 CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY AS k(attnum, ord)
                                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                                WHERE i.indrelid = c.oid AND i.indisreplident AND k.ord <= i.indnkeyatts), '[]'::pg_catalog.jsonb) END,
                           'parent', (
                               SELECT pn.nspname::pg_catalog.text || '.' || p.relname::pg_catalog.text
                                 FROM pg_catalog.pg_inherits h
                                 JOIN pg_catalog.pg_class p ON p.oid = h.inhparent
                                 JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
                                WHERE h.inhrelid = c.oid AND c.relispartition
                                LIMIT 1))
                  FROM pg_catalog.pg_class c
                  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.oid = p_relid
                   AND c.relkind IN ('r', 'p')
                   AND c.relpersistence <> 't'
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'dbsync'));
        END
        $fn$;

        -- The labels of an enum type, in their order, as stored for the next change of the type.
        CREATE FUNCTION dbsync.ddl_enum_shape(p_typid pg_catalog.oid) RETURNS pg_catalog.jsonb
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
            AS $fn$
            SELECT pg_catalog.jsonb_build_object('enum', true, 'labels', COALESCE(pg_catalog.jsonb_agg(e.enumlabel::pg_catalog.text ORDER BY e.enumsortorder), '[]'::pg_catalog.jsonb))
              FROM pg_catalog.pg_enum e
             WHERE e.enumtypid = p_typid
            $fn$;

        -- Writes one statement's message. A query string that holds several statements (a DO block, or "a; b; c" sent on
        -- the simple query protocol) is current_query() for each of them: its text goes into the first message of the transaction that carries it, the next ones say
        -- "statement_same" (a transaction-local note of its hash; a subtransaction rolled back takes the note with its
        -- message), so that a migration script of n statements does not write its text n times.
        CREATE FUNCTION dbsync.ddl_emit(p_event pg_catalog.text, p_commands pg_catalog.jsonb, p_tables pg_catalog.jsonb, p_enums pg_catalog.jsonb)
            RETURNS void
            LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
            AS $fn$
        DECLARE
            v_statement pg_catalog.text := pg_catalog.current_query();
            v_hash pg_catalog.text := pg_catalog.md5(COALESCE(v_statement, ''));
            v_message pg_catalog.jsonb := pg_catalog.jsonb_build_object(
                'v', 1, 'event', p_event, 'commands', p_commands, 'tables', p_tables, 'enums', p_enums);
        BEGIN
            IF v_statement IS NOT NULL AND pg_catalog.current_setting('dbsync.ddl_statement', true) IS NOT DISTINCT FROM v_hash THEN
                v_message := v_message || pg_catalog.jsonb_build_object('statement', NULL::pg_catalog.text, 'statement_same', true);
            ELSE
                PERFORM pg_catalog.set_config('dbsync.ddl_statement', v_hash, true);
                v_message := v_message || pg_catalog.jsonb_build_object('statement', pg_catalog.left(v_statement, 262144));
                IF pg_catalog.length(v_statement) > 262144 THEN
                    v_message := v_message || pg_catalog.jsonb_build_object('statement_truncated', true);
                END IF;
            END IF;
            PERFORM pg_catalog.pg_logical_emit_message(true, 'dbsync.ddl', v_message::pg_catalog.text);
        END
        $fn$;

        -- table_rewrite: notes the table for the statement's ddl_command_end (transaction-local, so a rolled back
        -- statement or subtransaction takes its note with it).
        CREATE FUNCTION dbsync.ddl_table_rewrite() RETURNS pg_catalog.event_trigger
            LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
            AS $fn$
        DECLARE
            v_noted pg_catalog.text := pg_catalog.current_setting('dbsync.ddl_rewritten', true);
            v_relid pg_catalog.text := pg_catalog.pg_event_trigger_table_rewrite_oid()::pg_catalog.text;
        BEGIN
            PERFORM pg_catalog.set_config('dbsync.ddl_rewritten',
                CASE WHEN v_noted IS NULL OR v_noted = '' THEN v_relid ELSE v_noted || ',' || v_relid END, true);
        END
        $fn$;

        -- ddl_command_end: one message per statement with commands on anything but temporary objects and dbsync. Every
        -- catalog read is by key (oid, parent oid, stored parent name): nothing here scans all tables.
        CREATE FUNCTION dbsync.ddl_command_end() RETURNS pg_catalog.event_trigger
            LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
            AS $fn$
        DECLARE
            v_noted pg_catalog.text := pg_catalog.current_setting('dbsync.ddl_rewritten', true);
            v_rewritten pg_catalog.oid[] := '{}';
            v_commands pg_catalog.jsonb;
            v_relids pg_catalog.oid[];
            v_own pg_catalog.oid[];
            v_types pg_catalog.oid[];
            v_schemas pg_catalog.oid[];
            v_all pg_catalog.oid[];
            v_queue pg_catalog.oid[];
            v_index pg_catalog.int4;
            v_relid pg_catalog.oid;
            v_before pg_catalog.jsonb;
            v_after pg_catalog.jsonb;
            v_tables pg_catalog.jsonb := '[]';
            v_enums pg_catalog.jsonb;
        BEGIN
            IF v_noted IS NOT NULL AND v_noted <> '' THEN
                v_rewritten := pg_catalog.string_to_array(v_noted, ',')::pg_catalog.oid[];
                PERFORM pg_catalog.set_config('dbsync.ddl_rewritten', '', true);
            END IF;

            -- The commands, each with the table it concerns: its own object, or the table of an index, a constraint,
            -- a trigger or a default (LIMIT 1: looked up by oid per command, never joined to all of pg_class).
            SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                       'tag', c.command_tag,
                       'object_type', c.object_type,
                       'schema', c.schema_name,
                       'identity', c.object_identity,
                       'in_extension', c.in_extension,
                       'relid', t.relid::pg_catalog.int8) ORDER BY c.ordinality),
                   pg_catalog.array_agg(t.relid ORDER BY c.ordinality) FILTER (WHERE t.relid IS NOT NULL AND NOT t.system),
                   pg_catalog.array_agg(t.relid) FILTER (WHERE t.relid = c.objid AND c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass),
                   pg_catalog.array_agg(c.objid ORDER BY c.ordinality) FILTER (WHERE c.classid = 'pg_catalog.pg_type'::pg_catalog.regclass),
                   pg_catalog.array_agg(c.objid) FILTER (WHERE c.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
                                                           AND c.command_tag = 'ALTER SCHEMA')
              INTO v_commands, v_relids, v_own, v_types, v_schemas
              FROM pg_catalog.pg_event_trigger_ddl_commands() WITH ORDINALITY AS c
              LEFT JOIN LATERAL (
                  SELECT r.oid AS relid,
                         r.relpersistence = 't' OR n.nspname = 'dbsync' AS skip,
                         n.nspname IN ('pg_catalog', 'information_schema', 'pg_toast') AS system
                    FROM pg_catalog.pg_class r
                    JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
                   WHERE r.oid = CASE c.classid
                             WHEN 'pg_catalog.pg_class'::pg_catalog.regclass THEN
                                 COALESCE((SELECT i.indrelid FROM pg_catalog.pg_index i WHERE i.indexrelid = c.objid), c.objid)
                             WHEN 'pg_catalog.pg_constraint'::pg_catalog.regclass THEN
                                 (SELECT k.conrelid FROM pg_catalog.pg_constraint k WHERE k.oid = c.objid)
                             WHEN 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN
                                 (SELECT g.tgrelid FROM pg_catalog.pg_trigger g WHERE g.oid = c.objid)
                             WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN
                                 (SELECT d.adrelid FROM pg_catalog.pg_attrdef d WHERE d.oid = c.objid)
                             END
                     AND r.relkind IN ('r', 'p')
                   LIMIT 1) AS t ON true
             WHERE (c.schema_name IS NULL OR c.schema_name NOT IN ('pg_temp', 'dbsync'))
               AND NOT (c.object_type = 'schema' AND c.object_identity = 'dbsync')
               AND t.skip IS NOT TRUE;

            IF v_commands IS NULL THEN
                RETURN;
            END IF;

            -- ALTER SCHEMA (RENAME) renames the tables in it.
            IF v_schemas IS NOT NULL THEN
                v_relids := COALESCE(v_relids, '{}') || ARRAY(
                    SELECT r.oid FROM pg_catalog.pg_class r
                     WHERE r.relnamespace = ANY (v_schemas) AND r.relkind IN ('r', 'p') AND r.relpersistence <> 't'
                     ORDER BY r.oid);
            END IF;

            -- An enum whose labels were renamed (as many labels, other names) changed the values of every column of it
            -- without a row change: the tables with such columns count as rewritten.
            IF v_types IS NOT NULL THEN
                v_rewritten := v_rewritten || ARRAY(
                    SELECT DISTINCT a.attrelid
                      FROM pg_catalog.pg_type ty
                      JOIN dbsync.ddl_shape s ON s.relid = ty.oid
                      JOIN pg_catalog.pg_attribute a ON a.atttypid IN (ty.oid, ty.typarray) AND a.attnum > 0 AND NOT a.attisdropped
                     WHERE ty.oid = ANY (v_types) AND ty.typtype = 'e'
                       AND pg_catalog.jsonb_array_length(s.shape OPERATOR(pg_catalog.->) 'labels')
                           = pg_catalog.jsonb_array_length(dbsync.ddl_enum_shape(ty.oid) OPERATOR(pg_catalog.->) 'labels')
                       AND (s.shape OPERATOR(pg_catalog.->) 'labels') IS DISTINCT FROM (dbsync.ddl_enum_shape(ty.oid) OPERATOR(pg_catalog.->) 'labels'));
            END IF;

            -- The tables concerned: those of the commands and the rewritten ones (each once, in that order); as each is
            -- taken, its partitions (and inheritance children) now are queued after it, and, for a partitioned one, the
            -- tables whose stored shape still names it as parent (a partition just detached). For each: before (stored)
            -- and after (now); the new shape is stored; the table is in the message when it is a command's own object,
            -- when its shape changed, or when the statement rewrote it. Every read here is by key (one statement per
            -- table, so that the plans stay generic and cached).
            v_all := ARRAY(
                SELECT u.relid
                  FROM pg_catalog.unnest(COALESCE(v_relids, '{}') || v_rewritten) WITH ORDINALITY AS u(relid, ord)
                 GROUP BY u.relid
                 ORDER BY pg_catalog.min(u.ord));
            v_index := 1;
            WHILE v_index <= pg_catalog.cardinality(v_all) LOOP
                v_relid := v_all[v_index];
                v_index := v_index + 1;
                v_before := (SELECT s.shape FROM dbsync.ddl_shape s WHERE s.relid = v_relid);
                v_after := dbsync.ddl_table_shape(v_relid);

                v_queue := '{}';
                IF (SELECT r.relhassubclass FROM pg_catalog.pg_class r WHERE r.oid = v_relid) THEN
                    v_queue := ARRAY(SELECT h.inhrelid FROM pg_catalog.pg_inherits h WHERE h.inhparent = v_relid ORDER BY h.inhrelid);
                END IF;
                IF v_after OPERATOR(pg_catalog.->>) 'kind' = 'p' THEN
                    v_queue := v_queue || ARRAY(
                        SELECT s.relid FROM dbsync.ddl_shape s
                         WHERE (s.shape OPERATOR(pg_catalog.->>) 'parent') = (v_after OPERATOR(pg_catalog.->>) 'schema') || '.' || (v_after OPERATOR(pg_catalog.->>) 'name')
                         ORDER BY s.relid);
                END IF;
                IF v_before OPERATOR(pg_catalog.->>) 'kind' = 'p'
                   AND (v_after IS NULL
                        OR (v_before OPERATOR(pg_catalog.->>) 'schema') IS DISTINCT FROM (v_after OPERATOR(pg_catalog.->>) 'schema')
                        OR (v_before OPERATOR(pg_catalog.->>) 'name') IS DISTINCT FROM (v_after OPERATOR(pg_catalog.->>) 'name')) THEN
                    v_queue := v_queue || ARRAY(
                        SELECT s.relid FROM dbsync.ddl_shape s
                         WHERE (s.shape OPERATOR(pg_catalog.->>) 'parent') = (v_before OPERATOR(pg_catalog.->>) 'schema') || '.' || (v_before OPERATOR(pg_catalog.->>) 'name')
                         ORDER BY s.relid);
                END IF;
                IF pg_catalog.cardinality(v_queue) > 0 THEN
                    v_all := v_all || ARRAY(
                        SELECT q.relid FROM pg_catalog.unnest(v_queue) WITH ORDINALITY AS q(relid, ord)
                         WHERE q.relid <> ALL (v_all)
                         GROUP BY q.relid
                         ORDER BY pg_catalog.min(q.ord));
                END IF;

                IF v_after IS NULL THEN
                    IF v_before IS NULL THEN
                        CONTINUE;
                    END IF;
                    DELETE FROM dbsync.ddl_shape s WHERE s.relid = v_relid;
                ELSIF v_before IS DISTINCT FROM v_after THEN
                    INSERT INTO dbsync.ddl_shape AS s (relid, shape) VALUES (v_relid, v_after)
                        ON CONFLICT (relid) DO UPDATE SET shape = EXCLUDED.shape;
                END IF;
                IF v_relid = ANY (v_own) OR v_before IS DISTINCT FROM v_after OR v_relid = ANY (v_rewritten) THEN
                    v_tables := v_tables || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                        'oid', v_relid::pg_catalog.int8,
                        'before', v_before,
                        'after', v_after,
                        'rewritten', v_relid = ANY (v_rewritten)));
                END IF;
            END LOOP;

            IF v_types IS NOT NULL THEN
                -- Each enum's labels now, and before (stored under the type's oid, which no table shares).
                SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                           'oid', e.oid::pg_catalog.int8,
                           'name', e.name,
                           'labels', e.shape OPERATOR(pg_catalog.->) 'labels',
                           'labels_before', (SELECT s.shape OPERATOR(pg_catalog.->) 'labels' FROM dbsync.ddl_shape s WHERE s.relid = e.oid))
                           ORDER BY pg_catalog.array_position(v_types, e.oid))
                  INTO v_enums
                  FROM (SELECT ty.oid, n.nspname::pg_catalog.text || '.' || ty.typname::pg_catalog.text AS name, dbsync.ddl_enum_shape(ty.oid) AS shape
                          FROM pg_catalog.pg_type ty
                          JOIN pg_catalog.pg_namespace n ON n.oid = ty.typnamespace
                         WHERE ty.oid = ANY (v_types) AND ty.typtype = 'e') AS e;
                INSERT INTO dbsync.ddl_shape AS s (relid, shape)
                SELECT ty.oid, dbsync.ddl_enum_shape(ty.oid) FROM pg_catalog.pg_type ty WHERE ty.oid = ANY (v_types) AND ty.typtype = 'e'
                    ON CONFLICT (relid) DO UPDATE SET shape = EXCLUDED.shape;
            END IF;

            PERFORM dbsync.ddl_emit('ddl_command_end', v_commands, v_tables, COALESCE(v_enums, '[]'::pg_catalog.jsonb));
        END
        $fn$;

        -- sql_drop: one message per statement that dropped tables (DROP TABLE, DROP SCHEMA ... CASCADE, DROP OWNED ...).
        -- Dropped columns are left to ddl_command_end, whose before/after shows them.
        CREATE FUNCTION dbsync.ddl_sql_drop() RETURNS pg_catalog.event_trigger
            LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
            AS $fn$
        DECLARE
            v_dropped pg_catalog.oid[];
            v_commands pg_catalog.jsonb;
            v_tables pg_catalog.jsonb;
        BEGIN
            SELECT pg_catalog.array_agg(d.objid),
                   pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                       'tag', TG_TAG,
                       'object_type', d.object_type,
                       'schema', d.schema_name,
                       'identity', d.object_identity,
                       'in_extension', false,
                       'relid', d.objid::pg_catalog.int8) ORDER BY d.ord),
                   pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                       'oid', d.objid::pg_catalog.int8,
                       'before', d.shape,
                       'after', NULL::pg_catalog.jsonb,
                       'rewritten', false) ORDER BY d.ord)
              INTO v_dropped, v_commands, v_tables
              FROM (SELECT o.ordinality AS ord, o.objid, o.object_type, o.schema_name, o.object_identity, o.is_temporary,
                           (SELECT s.shape FROM dbsync.ddl_shape s WHERE s.relid = o.objid) AS shape
                      FROM pg_catalog.pg_event_trigger_dropped_objects() WITH ORDINALITY AS o
                     WHERE o.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                       AND o.objsubid = 0
                       AND o.object_type = 'table'
                    OFFSET 0) AS d
             WHERE d.shape IS NOT NULL
                OR (NOT d.is_temporary AND d.schema_name NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'dbsync'));

            IF v_dropped IS NULL THEN
                RETURN;
            END IF;
            DELETE FROM dbsync.ddl_shape s WHERE s.relid = ANY (v_dropped);

            PERFORM dbsync.ddl_emit('sql_drop', v_commands, v_tables, '[]'::pg_catalog.jsonb);
        END
        $fn$;

        REVOKE ALL ON FUNCTION dbsync.ddl_version() FROM PUBLIC;
        REVOKE ALL ON FUNCTION dbsync.ddl_table_shape(pg_catalog.oid) FROM PUBLIC;
        REVOKE ALL ON FUNCTION dbsync.ddl_enum_shape(pg_catalog.oid) FROM PUBLIC;
        REVOKE ALL ON FUNCTION dbsync.ddl_emit(pg_catalog.text, pg_catalog.jsonb, pg_catalog.jsonb, pg_catalog.jsonb) FROM PUBLIC;
        REVOKE ALL ON FUNCTION dbsync.ddl_table_rewrite() FROM PUBLIC;
        REVOKE ALL ON FUNCTION dbsync.ddl_command_end() FROM PUBLIC;
        REVOKE ALL ON FUNCTION dbsync.ddl_sql_drop() FROM PUBLIC;

        -- The shapes of all tables now: kept rows are refreshed, rows of tables no longer there (or out of scope) go.
        WITH now_shape AS (
            SELECT c.oid AS relid, dbsync.ddl_table_shape(c.oid) AS shape
              FROM pg_catalog.pg_class c
             WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
            UNION ALL
            SELECT ty.oid, dbsync.ddl_enum_shape(ty.oid)
              FROM pg_catalog.pg_type ty
              JOIN pg_catalog.pg_namespace n ON n.oid = ty.typnamespace
             WHERE ty.typtype = 'e' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'dbsync')
        ), stale AS (
            DELETE FROM dbsync.ddl_shape s
             WHERE NOT EXISTS (SELECT FROM now_shape WHERE now_shape.relid = s.relid AND now_shape.shape IS NOT NULL)
        )
        INSERT INTO dbsync.ddl_shape AS s (relid, shape)
        SELECT now_shape.relid, now_shape.shape FROM now_shape WHERE now_shape.shape IS NOT NULL
        ON CONFLICT (relid) DO UPDATE SET shape = EXCLUDED.shape WHERE s.shape IS DISTINCT FROM EXCLUDED.shape;

        CREATE EVENT TRIGGER dbsync_ddl_table_rewrite ON table_rewrite EXECUTE FUNCTION dbsync.ddl_table_rewrite();
        CREATE EVENT TRIGGER dbsync_ddl_sql_drop ON sql_drop EXECUTE FUNCTION dbsync.ddl_sql_drop();
        CREATE EVENT TRIGGER dbsync_ddl_command_end ON ddl_command_end EXECUTE FUNCTION dbsync.ddl_command_end();
        -- Fired in every session, those with session_replication_role = replica too (a replication tool's apply, a
        -- restore): DDL there changes the tables all the same.
        ALTER EVENT TRIGGER dbsync_ddl_table_rewrite ENABLE ALWAYS;
        ALTER EVENT TRIGGER dbsync_ddl_sql_drop ENABLE ALWAYS;
        ALTER EVENT TRIGGER dbsync_ddl_command_end ENABLE ALWAYS;
        """;

    /// <summary>
    /// Removes the capture: the event triggers, the functions and the shape table, then schema <c>dbsync</c> itself when
    /// nothing else is left in it (never CASCADE: a checkpoint table kept there stays, and so does the schema).
    /// </summary>
    public const string Uninstall = """
        DROP EVENT TRIGGER IF EXISTS dbsync_ddl_command_end;
        DROP EVENT TRIGGER IF EXISTS dbsync_ddl_sql_drop;
        DROP EVENT TRIGGER IF EXISTS dbsync_ddl_table_rewrite;
        DROP FUNCTION IF EXISTS dbsync.ddl_command_end();
        DROP FUNCTION IF EXISTS dbsync.ddl_sql_drop();
        DROP FUNCTION IF EXISTS dbsync.ddl_table_rewrite();
        DROP FUNCTION IF EXISTS dbsync.ddl_table_shape(pg_catalog.oid);
        DROP FUNCTION IF EXISTS dbsync.ddl_enum_shape(pg_catalog.oid);
        DROP FUNCTION IF EXISTS dbsync.ddl_emit(pg_catalog.text, pg_catalog.jsonb, pg_catalog.jsonb, pg_catalog.jsonb);
        DROP FUNCTION IF EXISTS dbsync.ddl_version();
        DROP TABLE IF EXISTS dbsync.ddl_shape;
        DO $drop$
        BEGIN
            IF EXISTS (SELECT FROM pg_catalog.pg_namespace n WHERE n.nspname = 'dbsync')
               AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                                WHERE d.refclassid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
                                  AND d.refobjid = (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = 'dbsync'))
            THEN
                DROP SCHEMA IF EXISTS dbsync RESTRICT;
            END IF;
        END
        $drop$;
        """;

    /// <summary>
    /// One row with the installed version (an <c>int4</c>), or no row when the capture is not installed or only partly
    /// (any of its three event triggers missing, or not enabled ALWAYS: an older install, or one an administrator changed). Reads only the catalog: works without the schema and
    /// without any right on it.
    /// </summary>
    public const string InstalledVersionQuery = """
        SELECT pg_catalog.substring(p.prosrc, '[0-9]+')::pg_catalog.int4 AS version
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'dbsync' AND p.proname = 'ddl_version' AND p.pronargs = 0
           AND (SELECT pg_catalog.count(*)
                  FROM pg_catalog.pg_event_trigger e
                 WHERE e.evtenabled = 'A'
                   AND (e.evtname, e.evtevent) IN (('dbsync_ddl_command_end', 'ddl_command_end'),
                                                   ('dbsync_ddl_sql_drop', 'sql_drop'),
                                                   ('dbsync_ddl_table_rewrite', 'table_rewrite'))) = 3
        """;
}
