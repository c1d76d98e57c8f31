DROP INDEX central.ix_central_genealogy_link_child;
DROP INDEX central.ix_central_genealogy_link_parent;
DROP INDEX central.ix_central_material_lot_site_id_code;
ALTER TABLE central.material_lot DROP COLUMN shipped_to_site;
ALTER TABLE central.material_lot DROP COLUMN origin_site;
ALTER TABLE mes.lot_movement DROP CONSTRAINT ck_lot_movement_kind;
ALTER TABLE mes.lot_movement ADD CONSTRAINT ck_lot_movement_kind CHECK (kind IN
    ('receive', 'produce', 'consume', 'split_out', 'split_in', 'merge_out', 'merge_in',
     'move_out', 'move_in', 'scrap', 'adjust')) NOT VALID;
ALTER TABLE mes.material_lot DROP CONSTRAINT ck_material_lot_shipped;
ALTER TABLE mes.material_lot DROP CONSTRAINT ck_material_lot_status;
ALTER TABLE mes.material_lot ADD CONSTRAINT ck_material_lot_status CHECK (status IN
    ('available', 'on_hold', 'quarantined', 'consumed', 'scrapped')) NOT VALID;
ALTER TABLE mes.material_lot DROP COLUMN shipped_to_site;
ALTER TABLE mes.material_lot DROP COLUMN origin_site;
