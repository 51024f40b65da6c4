<?php
// The demo app's page: which web server answered, a session counter (cookie persistence),
// and a guestbook written through Tandem's MySQL writer frontend and read through its reader
// frontend, naming the database server that answered each. Plain-text clients (curl) get a
// short summary. See lib.php for the settings and api.php for the JSON form.
require __DIR__ . '/lib.php';

header('X-Served-By: ' . webName());

// Post/redirect/get: a reload does not write the entry twice.
$notice = null;
$noticeIsError = false;
if ($_SERVER['REQUEST_METHOD'] === 'POST') {
    $text = $_POST['message'] ?? '';
    $error = is_string($text) ? guestbookInvalid($text) : 'the message must be text';
    $status = 400;
    if ($error === null) {
        try {
            $written = guestbookWrite($text);
            header('Location: /?written=' . $written['id'], true, 303);
            exit;
        } catch (PDOException $e) {
            $error = 'database unavailable: ' . $e->getMessage();
            $status = 503;
        }
    }
    http_response_code($status);
    $notice = 'Not written: ' . $error;
    $noticeIsError = true;
} elseif (is_string($_GET['written'] ?? null) && preg_match('/^[0-9]{1,20}$/', $_GET['written'])) {
    $notice = sprintf('Entry #%s written through the writer frontend (see "Written on").',
        $_GET['written']);
}

$count = sessionCount();
$book = null;
$bookError = null;
try {
    $book = guestbookRead();
} catch (PDOException $e) {
    $bookError = 'database unavailable: ' . $e->getMessage();
}

$accept = $_SERVER['HTTP_ACCEPT'] ?? '';
if (strpos($accept, 'text/html') === false) {
    // curl and other non-browser clients: one fact per line.
    header('Content-Type: text/plain; charset=utf-8');
    echo 'Hello from ' . webName() . "\n";
    echo "Session requests: {$count}\n";
    echo 'Guestbook read from: '
        . ($book ? dbServerLabel($book['db']) : $bookError) . "\n";
    exit;
}

$write = dbEndpoint('write');
$read = dbEndpoint('read');
header('Content-Type: text/html; charset=utf-8');
?>
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Tandem demo: <?= h(webName()) ?></title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; }
  .facts { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; }
  .facts dt { font-weight: 600; }
  .notice { padding: .5rem; background: #e8f5e9; }
  .notice.error { background: #ffebee; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; border-bottom: 1px solid #ddd; padding: .3rem; vertical-align: top; }
</style>
</head>
<body>
<h1>Served by <?= h(webName()) ?></h1>
<dl class="facts">
  <dt>Web server</dt><dd><?= h(webName()) ?> (<?= h((string) ($_SERVER['SERVER_NAME'] ?? '')) ?>:<?= h((string) ($_SERVER['SERVER_PORT'] ?? '')) ?>)</dd>
  <dt>Requests in this session</dt><dd><?= $count ?> (grows while the SERVERID cookie keeps you on <?= h(webName()) ?>)</dd>
  <dt>Writes go to</dt><dd><?= h($write['host'] . ':' . $write['port']) ?> (Tandem, writer)</dd>
  <dt>Reads go to</dt><dd><?= h($read['host'] . ':' . $read['port']) ?> (Tandem, readers)</dd>
  <dt>This page was read from</dt><dd><?= h($book ? dbServerLabel($book['db']) : (string) $bookError) ?></dd>
</dl>

<?php if ($notice !== null): ?>
<p class="notice<?= $noticeIsError ? ' error' : '' ?>"><?= h($notice) ?></p>
<?php endif; ?>

<h2>Guestbook</h2>
<form method="post" action="/">
  <input name="message" maxlength="<?= GUESTBOOK_MAX_BYTES ?>" size="60" required
         placeholder="Say hello">
  <button type="submit">Sign</button>
</form>
<?php if ($book): ?>
<table>
  <tr><th>#</th><th>Message</th><th>Web server</th><th>Written on</th><th>When</th></tr>
  <?php foreach ($book['entries'] as $e): ?>
  <tr>
    <td><?= h((string) $e['id']) ?></td>
    <td><?= h($e['message']) ?></td>
    <td><?= h($e['web_server']) ?></td>
    <td><?= h($e['db_server']) ?></td>
    <td><?= h((string) $e['created_at']) ?></td>
  </tr>
  <?php endforeach; ?>
</table>
<?php endif; ?>
</body>
</html>
