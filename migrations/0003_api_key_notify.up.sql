-- 0003_api_key_notify: every ft-api keeps API keys in an in-process cache
-- (api/src/keycache.c) and LISTENs on channel ft_api_keys. A change that
-- matters to authentication (revoked, role, rate limit, expiry, hash, team,
-- a new or deleted key) sends the key's prefix as the payload, in the
-- changing transaction, so it arrives when that transaction commits;
-- TRUNCATE sends '*' (forget every key). last_used_at alone sends nothing:
-- ft-api itself writes it in the background.
CREATE FUNCTION ft_api_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('ft_api_keys', '*');
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND
       (NEW.prefix, NEW.key_hash, NEW.team_id, NEW.role, NEW.rate_limit_per_min,
        NEW.expires_at, NEW.revoked_at) IS NOT DISTINCT FROM
       (OLD.prefix, OLD.key_hash, OLD.team_id, OLD.role, OLD.rate_limit_per_min,
        OLD.expires_at, OLD.revoked_at) THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('ft_api_keys', OLD.prefix);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.prefix <> OLD.prefix) THEN
        PERFORM pg_notify('ft_api_keys', NEW.prefix);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER api_keys_notify AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION ft_api_keys_notify();
CREATE TRIGGER api_keys_notify_truncate AFTER TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION ft_api_keys_notify();
