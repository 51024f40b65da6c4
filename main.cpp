// Placeholder replaced by the real entry point in the same session.
int main() { return 0; }
