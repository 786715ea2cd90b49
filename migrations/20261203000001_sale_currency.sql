-- A sale's ISO 4217 currency, lower case as the payment provider spells it; the sales
-- created before payments were taken are in US dollars.
ALTER TABLE sales ADD COLUMN currency CHAR(3) NOT NULL DEFAULT 'usd' AFTER price_cents;
