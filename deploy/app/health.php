<?php
// Health endpoint for HTTP checks: 200 and a short body while PHP can answer.
header('Content-Type: text/plain');
echo "OK\n";
