<?php
// JSON API of the demo app, for scripts and tests:
//
//   GET  /api.php?action=whoami                  this web server and the session counter
//   GET|POST /api.php?action=write&text=...      writes a guestbook entry via the writer
//   GET  /api.php?action=read[&limit=N]          the newest entries via the reader
//
// Every answer names the web server ("web") and, for database actions, the Tandem frontend
// used ("via") and the database server that answered ("db": hostname, server_id, port).
require __DIR__ . '/lib.php';

function reply(int $status, array $body): void
{
    http_response_code($status);
    header('Content-Type: application/json');
    header('X-Served-By: ' . webName());
    echo json_encode(['web' => webName()] + $body, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE) . "\n";
    exit;
}

function via(string $role): string
{
    $ep = dbEndpoint($role);
    return $ep['host'] . ':' . $ep['port'];
}

$action = $_REQUEST['action'] ?? 'whoami';
try {
    switch ($action) {
        case 'whoami':
            reply(200, ['ok' => true, 'session_count' => sessionCount()]);
        case 'write':
            $text = $_REQUEST['text'] ?? '';
            if (!is_string($text) || ($error = guestbookInvalid($text)) !== null) {
                reply(400, ['ok' => false, 'error' => $error ?? 'text must be a string']);
            }
            $written = guestbookWrite($text);
            reply(200, ['ok' => true, 'via' => via('write')] + $written);
        case 'read':
            $limit = filter_var($_REQUEST['limit'] ?? GUESTBOOK_SHOWN, FILTER_VALIDATE_INT,
                ['options' => ['min_range' => 1, 'max_range' => 1000]]);
            if ($limit === false) {
                reply(400, ['ok' => false, 'error' => 'limit must be a number from 1 to 1000']);
            }
            reply(200, ['ok' => true, 'via' => via('read')] + guestbookRead($limit));
        default:
            reply(400, ['ok' => false, 'error' => 'unknown action; use whoami, write or read']);
    }
} catch (PDOException $e) {
    reply(503, ['ok' => false, 'error' => 'database unavailable: ' . $e->getMessage()]);
}
