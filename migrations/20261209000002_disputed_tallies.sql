-- The DISPUTED tally of every sale created before the state existed (a new sale gets its
-- own with the others): a move into it updates a row that is there. No order is DISPUTED
-- yet, so every count starts at zero. IGNORE: a run repeated after a failure adds
-- nothing twice.
INSERT IGNORE INTO order_tallies (sale_id, status) SELECT id, 'DISPUTED' FROM sales;
