DROP TABLE qa_votes;
DROP TABLE qa_questions;
DROP TABLE qa_sessions;
DROP TABLE device_blocks;
DROP TABLE issue_photos;
DROP TABLE issue_posts;
DROP TABLE issues;
DROP TABLE group_intakes;
