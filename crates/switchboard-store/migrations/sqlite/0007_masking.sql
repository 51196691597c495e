-- Masking rules per brand: JSON of a list of switchboard_core::masking::RuleSpec, checked
-- before they are saved. Every brand, new or existing, starts with the built-in card rule,
-- hidden from agents and from storage.
ALTER TABLE brands ADD COLUMN masking_rules TEXT NOT NULL DEFAULT '[{"name":"Credit card numbers","kind":"credit_card","hidden_from":{"agents":true,"other_devices":false,"storage":true},"enabled":true}]';
