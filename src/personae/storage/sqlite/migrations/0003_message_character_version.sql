-- Which version of the character produced each reply: the SHA-256 (hex) of the character
-- file's content (core.catalog.CharacterVersion.hash). NULL for user messages, greetings and
-- replies stored before versions were recorded.
ALTER TABLE messages ADD COLUMN character_version TEXT;
