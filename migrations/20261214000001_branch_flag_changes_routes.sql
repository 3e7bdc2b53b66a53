-- Routing no longer writes a stack's row for every delivery that concerns
-- it (core/src/webhooks/group_commit.rs): a stack's last triggering delivery
-- is read from its latest event, and the deleted-branch flag is written
-- only when a delivery changes it, which routing decides from the flag as
-- each process caches it with the stack's route. A change of the flag
-- therefore empties every process's cached routes, as a change of the
-- route does (an older process, during a rolling upgrade, still rewrites
-- the flag with every batch: the condition keeps that from emptying the
-- caches each time).
--
-- `last_delivery_id` stays: an older process writes it, and it answers for
-- a stack whose last trigger came before events were made.
CREATE TRIGGER stacks_branch_flag_changed
    AFTER UPDATE OF branch_deleted ON stacks
    FOR EACH ROW WHEN (OLD.branch_deleted IS DISTINCT FROM NEW.branch_deleted)
    EXECUTE FUNCTION notify_webhook_endpoints();
