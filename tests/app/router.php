<?php
// Test app for Tandem's HTTP integration tests, served by `php -S 127.0.0.1:PORT router.php`.
//
// Environment:
//   WEB_NAME         the name this server answers with ("web1", "web2")
//   WEB_STATUS       optional: the status that "/" answers with (a server failing its traffic)
//   WEB_HEALTH_FILE  optional: a file holding the status that "/health" answers with
//
// Endpoints:
//   /               the server name
//   /name/ANYTHING  the server name (distinct paths for balance = "uri")
//   /headers        the request headers received, as a JSON object (plus "_server")
//   /echo           the request body, byte for byte
//   /status/NNN     that status
//   /session        a PHP session counter: "web1 n=3"
//   /slow?ms=N      the server name after N milliseconds
//   /big?bytes=N    N bytes of a fixed pattern (byte i is i % 251); &length=1 sends
//                   Content-Length, otherwise the body ends with the connection
//   /health         200, or the status written in WEB_HEALTH_FILE

$name = getenv('WEB_NAME') ?: 'web';
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);

function answerText(int $status, string $body): void
{
    http_response_code($status);
    header('Content-Type: text/plain');
    header('Content-Length: ' . strlen($body));
    echo $body;
}

function answerHealth(string $name): void
{
    $file = getenv('WEB_HEALTH_FILE');
    $status = 200;
    if ($file !== false && is_readable($file)) {
        $status = (int) trim(file_get_contents($file)) ?: 200;
    }
    answerText($status, "$name health $status");
}

function answerBig(): void
{
    $bytes = max(0, (int) ($_GET['bytes'] ?? 0));
    $block = '';
    for ($i = 0; $i < 251 * 64; ++$i) {
        $block .= chr($i % 251);
    }
    header('Content-Type: application/octet-stream');
    if (!empty($_GET['length'])) {
        header('Content-Length: ' . $bytes);
    }
    // strlen($block) is a multiple of 251, so every block starts the pattern afresh.
    for ($sent = 0; $sent < $bytes; $sent += strlen($block)) {
        echo substr($block, 0, min(strlen($block), $bytes - $sent));
        flush();
    }
}

function answerSession(string $name): void
{
    session_start();
    $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
    answerText(200, "$name n=" . $_SESSION['n']);
}

function answerHeaders(string $name): void
{
    $headers = getallheaders();
    $headers['_server'] = $name;
    header('Content-Type: application/json');
    echo json_encode($headers, JSON_UNESCAPED_SLASHES);
}

if ($path === '/') {
    $status = (int) (getenv('WEB_STATUS') ?: 200);
    answerText($status, $name);
} elseif (str_starts_with($path, '/name/')) {
    answerText(200, $name);
} elseif ($path === '/headers') {
    answerHeaders($name);
} elseif ($path === '/echo') {
    header('Content-Type: application/octet-stream');
    echo file_get_contents('php://input');
} elseif (preg_match('#^/status/([1-5][0-9][0-9])$#', $path, $m)) {
    http_response_code((int) $m[1]);
    if ($m[1] !== '204' && $m[1] !== '304') {
        echo "status $m[1]";
    }
} elseif ($path === '/session') {
    answerSession($name);
} elseif ($path === '/slow') {
    usleep(1000 * max(0, (int) ($_GET['ms'] ?? 0)));
    answerText(200, $name);
} elseif ($path === '/big') {
    answerBig();
} elseif ($path === '/health') {
    answerHealth($name);
} else {
    answerText(404, "no route for $path");
}
