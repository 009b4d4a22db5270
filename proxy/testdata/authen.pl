#!/usr/bin/perl
# Drives Authen::TacacsPlus (Debian libauthen-tacacsplus-perl, libtac-style C underneath) against the
# front end: usage authen.pl HOST PORT; the key comes on stdin (never on the command line). Prints one
# line per case: NAME RESULT ERRMSG.
use strict;
use warnings;
use Authen::TacacsPlus;

my ($host, $port) = @ARGV;
my $key = <STDIN>;
chomp $key;
my @cases = (
    ['ascii-pass', 'alice', 'alice-pw', Authen::TacacsPlus::TAC_PLUS_AUTHEN_TYPE_ASCII()],
    ['ascii-fail', 'alice', 'wrong',    Authen::TacacsPlus::TAC_PLUS_AUTHEN_TYPE_ASCII()],
    ['pap-pass',   'alice', 'alice-pw', Authen::TacacsPlus::TAC_PLUS_AUTHEN_TYPE_PAP()],
    ['pap-fail',   'nobody', 'x',       Authen::TacacsPlus::TAC_PLUS_AUTHEN_TYPE_PAP()],
);
$| = 1;
for my $c (@cases) {
    my ($name, $user, $pw, $type) = @$c;
    # One connection per authentication, as the module (and pam_tacplus) does.
    my $tac = Authen::TacacsPlus->new(Host => $host, Port => $port, Key => $key, Timeout => 10);
    if (!$tac) {
        print "$name connect ", Authen::TacacsPlus::errmsg(), "\n";
        next;
    }
    my $ok = $tac->authen($user, $pw, $type) ? 1 : 0;
    my $msg = Authen::TacacsPlus::errmsg() // '';
    $msg =~ s/\s+/_/g;
    print "$name $ok $msg\n";
    $tac->close();
}
