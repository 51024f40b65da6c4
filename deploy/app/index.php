<?php
// The demo app: shows which web server answered, so that balancing and failover are
// visible from a browser or `curl`. The web server's name comes from the environment.
$server = getenv('WEB_NAME') ?: gethostname();
header('Content-Type: text/plain; charset=utf-8');
header('X-Served-By: ' . $server);
echo "Hello from {$server}\n";
echo 'Time: ' . date(DATE_ATOM) . "\n";
