//! The task's policy at work: the session's ruleset, requests the policy answers,
//! and the fallback after `human_timeout` — each audited in the check log.

use super::*;
use crate::answer::Answer;
use crate::policy::{Action, PermissionRule, QuestionPolicy};
use crate::request::{PendingRequest, RequestKind};

fn bash(id: &str, session: &str, command: &str) -> PendingRequest {
    PendingRequest {
        id: id.into(),
        session_id: session.into(),
        kind: RequestKind::Permission { permission: "bash".into(), patterns: vec![command.into()] },
        asked_at: None,
    }
}

fn guarded(workspace: &str) -> TaskSpec {
    let mut spec = three_steps(workspace);
    spec.unattended.permissions = Some(vec![
        PermissionRule::new("bash", "*", Action::Ask),
        PermissionRule::new("bash", "cargo *", Action::Allow),
        PermissionRule::new("bash", "git push *", Action::Deny),
    ]);
    spec.unattended.questions = QuestionPolicy::Deny;
    spec
}

async fn audit(f: &Fixture, id: &TaskId) -> Vec<String> {
    let log = f.store.check_log(id, &LogQuery::default()).await.expect("log");
    log.into_iter().map(|e| e.entry.summary).filter(|s| s.starts_with("Answered")).collect()
}

#[tokio::test]
async fn the_session_is_created_with_the_tasks_rules_and_without_questions() {
    let f = fixture(MemoryAgent::replying(&["working"]));
    let id = f.harness.add_task(guarded(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let session = f.task(&id).await.active_session_id.expect("session");
    let rules: Vec<String> =
        f.agent.session_rules(&session).iter().map(ToString::to_string).collect();
    assert_eq!(
        rules,
        [
            r#"bash "*": ask"#,
            r#"bash "cargo *": allow"#,
            r#"bash "git push *": deny"#,
            r#"question "*": deny"#
        ]
    );

    let plain = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let session = f.task(&plain).await.active_session_id.expect("session");
    assert!(f.agent.session_rules(&session).is_empty(), "no policy: OpenCode's config decides");
}

#[tokio::test]
async fn requests_the_policy_decides_are_answered_and_audited_the_rest_wait() {
    let f = fixture(MemoryAgent::replying(&["working"]));
    let id = f.harness.add_task(guarded(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let session = f.task(&id).await.active_session_id.expect("session");
    f.agent.set_activity(&session, SessionActivity::Busy);
    f.agent.set_pending(vec![
        bash("per_1", &session, "cargo test"),
        bash("per_2", &session, "git push origin main"),
        bash("per_3", &session, "echo hello > hello.txt"),
    ]);
    f.check_due(&id).await;

    let answers = f.agent.answers();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[0], ("per_1".to_owned(), Answer::Allow { always: false }));
    assert!(
        matches!(&answers[1], (id, Answer::Deny { message: Some(m) }) if id == "per_2" && m.contains("Carry on"))
    );
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Waiting, "the one left to a person");
    assert_eq!(
        task.last_summary.as_deref(),
        Some(r#"Waiting for a person — permission: bash "echo hello > hello.txt""#)
    );
    assert_eq!(
        audit(&f, &id).await,
        [
            r#"Answered permission: bash "cargo test": allowed once, by the task's policy (bash "cargo *": allow)"#,
            r#"Answered permission: bash "git push origin main": denied: "This task's policy does not allow that (bash \"git push *\": deny). Carry on without it: find another way within the rules, or say what you need in your reply.", by the task's policy (bash "git push *": deny)"#,
        ]
    );
}

#[tokio::test]
async fn a_request_nobody_answers_gets_the_fallback_after_human_timeout() {
    let f = fixture(MemoryAgent::replying(&["working"]));
    let mut spec = three_steps(&f.workspace.path());
    spec.unattended.human_timeout_seconds = Some(600);
    let id = f.harness.add_task(spec).await.expect("add");
    f.harness.tick().await.expect("start");
    let session = f.task(&id).await.active_session_id.expect("session");
    f.agent.set_activity(&session, SessionActivity::Busy);
    f.agent.set_pending(vec![bash("per_1", &session, "echo hi")]);
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Waiting);
    assert!(f.agent.answers().is_empty(), "a person has 10 minutes");
    let asked = task.pending_requests[0].asked_at.expect("first seen");
    let due = task.next_check_at.expect("due again");
    assert!(due <= asked + chrono::Duration::seconds(600), "due by the deadline: {due} vs {asked}");

    // Ten minutes later, as the store remembers the request.
    let mut aged = task.pending_requests.clone();
    aged[0].asked_at = Some(asked - chrono::Duration::seconds(600));
    let update = TaskUpdate { pending_requests: Some(aged), ..TaskUpdate::default() };
    f.store.update_task(&id, &update, None).await.expect("age it");
    f.check_due(&id).await;
    let answers = f.agent.answers();
    assert!(
        matches!(&answers[..], [(id, Answer::Deny { message: Some(_) })] if id == "per_1"),
        "{answers:?}"
    );
    let audit = audit(&f, &id).await;
    assert_eq!(audit.len(), 1);
    assert!(audit[0].contains("by the fallback after 6"), "{audit:?}");
    assert_eq!(f.task(&id).await.status, TaskStatus::Running, "the task carries on");
}
