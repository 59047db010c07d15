-- OpenLoom store schema, version 8: the OpenCode server a task's sessions live in. A
-- harness claims only tasks bound to the server it is connected to, or to none: NULL,
-- the value of every task created before this version and of tasks in a store whose
-- harnesses share one OpenCode.
ALTER TABLE tasks ADD COLUMN opencode TEXT;
