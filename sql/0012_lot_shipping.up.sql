-- 0012 lot shipping: a lot leaves one site for another and arrives there with the same
-- code. The shipping site records where it went (status 'shipped', a 'ship_out' movement
-- taking all of it); the receiving site records where it came from. The central store's
-- copies get the same columns, so the company trace can join a lot's two halves.

ALTER TABLE mes.material_lot ADD COLUMN origin_site text;
ALTER TABLE mes.material_lot ADD COLUMN shipped_to_site text;
ALTER TABLE mes.material_lot ADD CONSTRAINT ck_material_lot_origin_site_length
    CHECK (char_length(origin_site) BETWEEN 1 AND 64);
ALTER TABLE mes.material_lot ADD CONSTRAINT ck_material_lot_shipped_to_site_length
    CHECK (char_length(shipped_to_site) BETWEEN 1 AND 64);
ALTER TABLE mes.material_lot DROP CONSTRAINT ck_material_lot_status;
ALTER TABLE mes.material_lot ADD CONSTRAINT ck_material_lot_status CHECK (status IN
    ('available', 'on_hold', 'quarantined', 'consumed', 'scrapped', 'shipped'));
ALTER TABLE mes.material_lot ADD CONSTRAINT ck_material_lot_shipped
    CHECK ((status = 'shipped') = (shipped_to_site IS NOT NULL));
ALTER TABLE mes.lot_movement DROP CONSTRAINT ck_lot_movement_kind;
ALTER TABLE mes.lot_movement ADD CONSTRAINT ck_lot_movement_kind CHECK (kind IN
    ('receive', 'produce', 'consume', 'split_out', 'split_in', 'merge_out', 'merge_in',
     'move_out', 'move_in', 'scrap', 'adjust', 'ship_out'));

-- The application sets where a lot went when it ships it (column grants since 0007).
GRANT UPDATE (shipped_to_site) ON mes.material_lot TO mes_app;

-- The central copies (made with LIKE in 0011) take the new columns too; the central ingest
-- reads each central table's columns, so they travel from then on.
ALTER TABLE central.material_lot ADD COLUMN origin_site text;
ALTER TABLE central.material_lot ADD COLUMN shipped_to_site text;
-- The company trace walks links both ways and finds a lot's other half by its code.
CREATE INDEX ix_central_material_lot_site_id_code ON central.material_lot (site_id, code);
CREATE INDEX ix_central_genealogy_link_parent ON central.genealogy_link (site_id, parent_lot_id);
CREATE INDEX ix_central_genealogy_link_child ON central.genealogy_link (site_id, child_lot_id);
