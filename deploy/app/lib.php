<?php
// Shared code of the demo app: which web server this is, and the guestbook, written through
// Tandem's MySQL writer frontend and read through its reader frontend. Every setting comes
// from the environment, with defaults that fit the local demo (scripts/demo.sh):
//
//   WEB_NAME                  this web server's name (else the host name)
//   DB_WRITE_HOST, DB_WRITE_PORT   Tandem's writer frontend   (127.0.0.1, 3306)
//   DB_READ_HOST, DB_READ_PORT     Tandem's reader frontend   (127.0.0.1, 3307)
//   DB_USER, DB_PASSWORD, DB_NAME  the application account    (app, apppass, app)

const GUESTBOOK_MAX_BYTES = 500;
const GUESTBOOK_SHOWN = 20;

function env(string $name, string $default): string
{
    $value = getenv($name);
    return ($value === false || $value === '') ? $default : $value;
}

// The name this web server answers with, as set by the demo or the compose file.
function webName(): string
{
    return env('WEB_NAME', gethostname() ?: 'unknown');
}

// "host:port" of the Tandem frontend used for $role ('write' or 'read').
function dbEndpoint(string $role): array
{
    $prefix = $role === 'write' ? 'DB_WRITE_' : 'DB_READ_';
    $port = $role === 'write' ? '3306' : '3307';
    return ['host' => env($prefix . 'HOST', '127.0.0.1'), 'port' => (int) env($prefix . 'PORT', $port)];
}

// A new connection through Tandem for $role. Each request opens its own, so that every
// page view shows where Tandem sent that connection.
function dbConnect(string $role): PDO
{
    $ep = dbEndpoint($role);
    $dsn = sprintf('mysql:host=%s;port=%d;dbname=%s;charset=utf8mb4', $ep['host'], $ep['port'],
        env('DB_NAME', 'app'));
    return new PDO($dsn, env('DB_USER', 'app'), env('DB_PASSWORD', 'apppass'), [
        PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
        PDO::ATTR_TIMEOUT => 3,
        PDO::ATTR_DEFAULT_FETCH_MODE => PDO::FETCH_ASSOC,
    ]);
}

// Which database server answered on this connection.
function dbServer(PDO $db): array
{
    $row = $db->query('SELECT @@hostname AS hostname, @@server_id AS server_id, @@port AS port')
        ->fetch();
    return ['hostname' => $row['hostname'], 'server_id' => (int) $row['server_id'],
        'port' => (int) $row['port']];
}

function dbServerLabel(array $server): string
{
    return sprintf('%s:%d (server_id %d)', $server['hostname'], $server['port'],
        $server['server_id']);
}

// Checks a guestbook message; returns an error text, or null when it is acceptable.
function guestbookInvalid(string $text): ?string
{
    if (trim($text) === '') {
        return 'the message is empty';
    }
    if (strlen($text) > GUESTBOOK_MAX_BYTES) {
        return 'the message is longer than ' . GUESTBOOK_MAX_BYTES . ' bytes';
    }
    if (preg_match('//u', $text) !== 1) {
        return 'the message is not valid UTF-8';
    }
    return null;
}

// Writes one entry through the writer frontend; returns its id and the server that took it.
function guestbookWrite(string $text): array
{
    $db = dbConnect('write');
    $server = dbServer($db);
    $stmt = $db->prepare(
        'INSERT INTO guestbook (message, web_server, db_server) VALUES (?, ?, ?)');
    $stmt->execute([$text, webName(), dbServerLabel($server)]);
    return ['id' => (int) $db->lastInsertId(), 'db' => $server];
}

// The newest entries, read through the reader frontend, and the server that answered.
function guestbookRead(int $limit = GUESTBOOK_SHOWN): array
{
    $db = dbConnect('read');
    $server = dbServer($db);
    $stmt = $db->prepare('SELECT id, message, web_server, db_server, created_at FROM guestbook '
        . 'ORDER BY created_at DESC, id DESC LIMIT ?');
    $stmt->bindValue(1, $limit, PDO::PARAM_INT);
    $stmt->execute();
    return ['entries' => $stmt->fetchAll(), 'db' => $server];
}

// Counts this visitor's requests in the PHP session. Sessions live on one web server, so a
// counter that keeps growing shows that Tandem's cookie keeps the visitor there.
function sessionCount(): int
{
    session_start();
    $_SESSION['count'] = ($_SESSION['count'] ?? 0) + 1;
    $count = $_SESSION['count'];
    session_write_close();
    return $count;
}

function h(string $text): string
{
    return htmlspecialchars($text, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
}
