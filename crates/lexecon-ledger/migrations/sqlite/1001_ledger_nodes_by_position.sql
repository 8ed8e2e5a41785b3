-- Subtree hashes keyed by when they come into being. The node (level, idx) is complete
-- once leaf ((idx + 1) << level) - 1 is appended, so pos = that leaf * 64 + level only
-- grows: a batch's new nodes append to the end of one B-tree, where the (level, idx) key
-- put them on a different page per level (and each page into the WAL at every commit).
-- pos is the only stored key; level and idx are computed from it, so they cannot
-- disagree with it.
CREATE TABLE ledger_nodes_by_pos (
    pos INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    level INTEGER GENERATED ALWAYS AS (pos & 63) VIRTUAL,
    idx INTEGER GENERATED ALWAYS AS ((((pos >> 6) + 1) >> (pos & 63)) - 1) VIRTUAL
);
INSERT INTO ledger_nodes_by_pos (pos, hash)
    SELECT (((idx + 1) << level) - 1) * 64 + level, hash FROM ledger_nodes ORDER BY 1;
DROP TABLE ledger_nodes;
ALTER TABLE ledger_nodes_by_pos RENAME TO ledger_nodes;
