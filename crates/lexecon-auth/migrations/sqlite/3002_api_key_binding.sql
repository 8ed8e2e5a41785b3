-- API keys are bound to the actors they may speak for and the LLM roles they may name.
-- actors: a JSON array of full-match glob patterns; NULL for a key created before
-- bindings existed (it speaks for no actor until bound). llm_roles: a JSON array of
-- strings.
ALTER TABLE auth_api_keys ADD COLUMN actors TEXT;
ALTER TABLE auth_api_keys ADD COLUMN llm_roles TEXT NOT NULL DEFAULT '[]';
