-- archive_item: one row per archive item (件) of the electronic accounting archive.
-- Column order = module_utils/archive_fixity.py COLUMNS = the CSV manifests'
-- header = the seed's archive_item.copy.sql COPY column list.
-- Idempotent: safe to run on every converge.
CREATE TABLE IF NOT EXISTS archive_item (
    archive_no   text        PRIMARY KEY,            -- 档号, e.g. Z001-KJ·2019-30-0001
    fonds        text        NOT NULL,               -- 全宗号
    category     text        NOT NULL DEFAULT 'KJ',  -- 类别 (KJ = 会计档案)
    year         smallint    NOT NULL CHECK (year BETWEEN 1900 AND 2200),  -- 年度
    retention    text        NOT NULL CHECK (retention IN ('永久', '30年', '10年')),  -- 保管期限
    seq          integer     NOT NULL CHECK (seq >= 1),  -- 件号, contiguous 1..n per fonds/category/year/retention
    title        text        NOT NULL,               -- 题名
    voucher_nos  text        NOT NULL DEFAULT '',    -- 凭证号, ';'-separated (记-0001;记-0002)
    pages        integer     CHECK (pages >= 0),     -- 页数
    file_path    text        NOT NULL UNIQUE,        -- relative to the file store root
    size_bytes   bigint      NOT NULL CHECK (size_bytes >= 0),
    sha256       char(64)    NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    sm3          char(64)    NOT NULL CHECK (sm3 ~ '^[0-9a-f]{64}$'),
    format       text        NOT NULL DEFAULT 'pdf', -- pdf, ofd, ...
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (fonds, category, year, retention, seq)
);
CREATE INDEX IF NOT EXISTS archive_item_fonds_year ON archive_item (fonds, year);
COMMENT ON TABLE archive_item IS 'archive-dr: electronic accounting archive items with fixity (SHA-256, SM3)';
