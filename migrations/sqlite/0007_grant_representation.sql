-- The organization a grant acts for, when the citizen chose to represent
-- one at sign-in (JSON: organization, powers, mandate reference).
ALTER TABLE grants ADD COLUMN representation TEXT;
