-- Produces the pgoutput fixtures under this folder (see record-fixtures.sh). Each statement below is its own
-- transaction, so the recorded frames follow this order.
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE TABLE Users (id SERIAL PRIMARY KEY, first_name VARCHAR(255) NOT NULL, user_name VARCHAR(255) NOT NULL, email VARCHAR(255) NOT NULL UNIQUE, avatar VARCHAR(255), homepage VARCHAR(255), date_of_birth DATE, address TEXT, interests TEXT[]);
CREATE TABLE Restaurant (id VARCHAR(255) PRIMARY KEY, name VARCHAR(255) NOT NULL, description TEXT, address TEXT, rating INT, tags TEXT[]);
CREATE TABLE Visit (user_id INT REFERENCES Users(id), restaurant_id VARCHAR(255) REFERENCES Restaurant(id), amount_spent DECIMAL(10, 2) NOT NULL, visit_rating INT, PRIMARY KEY (user_id, restaurant_id));
CREATE TABLE all_types (id bigint PRIMARY KEY, flag boolean, small smallint, big bigint, uid uuid, stamp timestamp, stamp_tz timestamptz, amount numeric, feeling mood,
  f4 real, f8 double precision, day date, day_exact date, at time, at_tz timetz, span interval, span_exact interval, stamp_exact timestamptz, cash money);
ALTER TABLE Restaurant REPLICA IDENTITY FULL;
CREATE PUBLICATION fixtures FOR ALL TABLES;
SELECT 'init' FROM pg_create_logical_replication_slot('fixtures', 'pgoutput');

INSERT INTO Users (first_name, user_name, email, date_of_birth, address, interests) VALUES ('Ada', 'ada', 'ada@example.com', '1815-12-10', 'London', ARRAY['math', NULL, 'a "quoted", value', '']);
INSERT INTO Restaurant (id, name, rating, tags) VALUES ('r-1', 'Tofu House', 4, ARRAY[]::text[]);
INSERT INTO Visit VALUES (1, 'r-1', -1234.50, NULL);
UPDATE Users SET email = 'ada@lovelace.example' WHERE id = 1;
UPDATE Visit SET restaurant_id = 'r-1' , user_id = 1, amount_spent = 0.01 WHERE user_id = 1;
UPDATE Restaurant SET rating = 5 WHERE id = 'r-1';
DELETE FROM Visit;
DELETE FROM Restaurant;
INSERT INTO all_types VALUES (1, true, -32768, 9223372036854775807, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29 23:59:59.999999', '2024-06-01 12:34:56.789012+02', 123456789012345678.000000001, 'happy',
  'NaN', -1.5e300, '2024-02-29', 'infinity', '23:59:59.999999', '12:34:56+05:30', '1 day 00:00:01.5', '1 year 2 days', '-infinity', '-1234.56');
TRUNCATE Visit, Restaurant RESTART IDENTITY CASCADE;
SELECT 'm1' FROM pg_logical_emit_message(true, 'dbsync', 'transactional');
SELECT 'm2' FROM pg_logical_emit_message(false, 'dbsync', 'not transactional');
SELECT 'o1' FROM pg_replication_origin_create('fixture_origin');
BEGIN;
SELECT 'o2' FROM pg_replication_origin_session_setup('fixture_origin');
SELECT 'o3' FROM pg_replication_origin_xact_setup('0/ABCDEF', '2024-01-02 03:04:05+00');
INSERT INTO Restaurant (id, name) VALUES ('from-origin', 'replicated');
COMMIT;
SELECT pg_replication_origin_session_reset();

-- Decoding runs in this session: the settings DBSync gives its own (text tuples are written in these formats).
SET IntervalStyle = iso_8601; SET lc_monetary = 'C'; SET bytea_output = hex; SET extra_float_digits = 3;
\o binary.hex
SELECT lsn || ' ' || encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('fixtures', NULL, NULL,
  'proto_version', '2', 'publication_names', 'fixtures', 'binary', 'true', 'messages', 'true');
\o text.hex
SELECT lsn || ' ' || encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('fixtures', NULL, NULL,
  'proto_version', '1', 'publication_names', 'fixtures');
\o
