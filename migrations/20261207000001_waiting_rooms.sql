-- A sale's waiting room, when staff chose one: how places are given (`fifo`, or
-- `shuffled` for those who joined before the opening), how many shoppers a second it
-- lets through, whether it is paused, and the proof of work asked at the join (the
-- largest number a challenge may hide). NULL mode: no waiting room.
ALTER TABLE sales
  ADD COLUMN queue_mode VARCHAR(16) NULL DEFAULT NULL AFTER payment_window_secs,
  ADD COLUMN queue_rate INT UNSIGNED NOT NULL DEFAULT 0 AFTER queue_mode,
  ADD COLUMN queue_paused TINYINT(1) NOT NULL DEFAULT 0 AFTER queue_rate,
  ADD COLUMN queue_difficulty INT UNSIGNED NOT NULL DEFAULT 0 AFTER queue_paused;
