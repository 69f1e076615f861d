-- Creates Cofre's key database beside its data database (compose.yaml runs this once, at init).
-- The two must be backed up separately: see the README's "Backups".
CREATE DATABASE cofre_keys OWNER cofre;
