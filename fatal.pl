package T; use base 'Net::Server';
sub fatal_hook { my ($self, @a) = @_; print STDOUT "FATAL_HOOK ", scalar(@a), " ", join("|", map { defined $_ ? $_ : 'undef' } @a), "\n"; }
T->run(port => $ARGV[0], host => '127.0.0.1', ipv => 4);
