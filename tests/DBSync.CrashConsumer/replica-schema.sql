-- The crash consumer's replica: the seed tables with their keys (no foreign keys: changes arrive in commit order,
-- snapshot rows table by table), and applied_change, keyed by each change's WAL position. Used by CrashTests and
-- benchmarks/DBSync.FailoverBench.
CREATE TABLE users (id int PRIMARY KEY, first_name varchar(255) NOT NULL, user_name varchar(255) NOT NULL,
    email varchar(255) NOT NULL, avatar varchar(255), homepage varchar(255), date_of_birth date, address text, interests text[]);
CREATE TABLE restaurant (id varchar(255) PRIMARY KEY, name varchar(255) NOT NULL, description text, address text, rating int, tags text[]);
CREATE TABLE visit (user_id int, restaurant_id varchar(255), amount_spent numeric(10, 2) NOT NULL, visit_rating int,
    PRIMARY KEY (user_id, restaurant_id));
CREATE TABLE applied_change (xid bigint NOT NULL, lsn pg_lsn PRIMARY KEY);
