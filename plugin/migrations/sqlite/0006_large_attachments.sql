-- Large attachments by secure link (issue 16). Kept in step between sqlite/ and postgres/ (only the
-- binary type differs). Times are unix seconds. One row per attachment taken out of a held message: its
-- content is the sealed file `<blob_id>.blob` in hold.blob_dir (hold/blob.rs), its key wrapped by the
-- master key (associated data: the blob id). state: 'stored' until the file is deleted ('deleted'), when
-- the message's retention ends or it is withdrawn. The name and type are erased with the file.
CREATE TABLE hold_blobs (
    blob_id      TEXT PRIMARY KEY,
    message_id   TEXT NOT NULL REFERENCES held_messages (id),
    part_index   BIGINT NOT NULL,
    filename     TEXT,
    content_type TEXT,
    size         BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    wrapped_key  BLOB,
    state        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    deleted_at   BIGINT
);
CREATE INDEX hold_blobs_message ON hold_blobs (message_id);
CREATE INDEX hold_blobs_stored ON hold_blobs (state) WHERE state = 'stored';
