-- OpenLoom's PostgreSQL schema, version 6: the OpenCode server a task's sessions live
-- in (the SQLite store's schema 8). A worker claims only tasks bound to the server it
-- is connected to, or to none: NULL, the value of every task created before this
-- version and of tasks in a store whose workers share one OpenCode.
ALTER TABLE tasks ADD COLUMN opencode TEXT;
