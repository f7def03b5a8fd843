#!/usr/bin/perl -w
# The Perl REST API example from the Sipwise sip:provider CE handbook (seed 001, section
# 13.1.1.1 "Managing Customers and Subscribers"), kept as close to the original as possible so
# that it proves an unchanged Sipwise integration works against voxprov. Changes from the seed:
#   - the two typos are fixed (missing comma after `username`, undefined `$t`);
#   - the target is taken from the environment instead of being hard-coded;
#   - reseller_id is sent with the customer contact, as the handbook's warning requires for an
#     admin user (set VOXPROV_RESELLER_ID to an empty string to leave it out);
#   - a missing id dies instead of carrying on, and the ids are printed on a RESULT line;
#   - after the DELETE it checks that the subscriber answers 404, as careful clients do.
#
# Environment (defaults as in the seed):
#   VOXPROV_URI               https://ngcp.example.com:1443
#   VOXPROV_NETLOC            host:port for $ua->credentials (default: taken from VOXPROV_URI)
#   VOXPROV_USER, VOXPROV_PASS
#   VOXPROV_DOMAIN            subscriber domain (must exist), ngcp.example.com
#   VOXPROV_BILLING_PROFILE   billing profile handle (must exist), my_test_profile
#   VOXPROV_RESELLER_ID       1
#   VOXPROV_CC, VOXPROV_AC, VOXPROV_SN_BASE   43, 9876, 10001 (aliases use AC+1 and AC+2)
#
# Exits non-zero on any failure; on success the last line is
#   RESULT customer_id=<n> subscriber_id=<n> contact_id=<n>
use strict;
use v5.10;

use LWP::UserAgent;
use JSON qw();
use URI;

sub env_or { my ($name, $default) = @_; my $v = $ENV{$name}; return defined $v && $v ne '' ? $v : $default; }

my $uri = env_or('VOXPROV_URI', 'https://ngcp.example.com:1443');
$uri =~ s{/+$}{};
my $netloc = env_or('VOXPROV_NETLOC', URI->new($uri)->host_port);
my $ua = LWP::UserAgent->new;
my $user = env_or('VOXPROV_USER', 'myusername');
my $pass = env_or('VOXPROV_PASS', 'mypassword');
$ua->credentials($netloc, 'api_admin_http', $user, $pass);
my ($req, $res);

my $domain = env_or('VOXPROV_DOMAIN', 'ngcp.example.com');
my $reseller_id = $ENV{VOXPROV_RESELLER_ID} // 1;
# Numbers go out as JSON numbers, as in the seed (0 + forces a number, not a string).
my $cc = 0 + env_or('VOXPROV_CC', 43);
my $ac = 0 + env_or('VOXPROV_AC', 9876);
my $sn = 0 + env_or('VOXPROV_SN_BASE', 10001);
# The seed uses $t without defining it. Any sn that is unique on the server will do: the
# subscriber's own sn is (it is only used here under another cc/ac).
my $t = $sn;

sub id_from_location {
    my ($res, $what) = @_;
    my $id = $res->header('Location') // '';
    $id =~ s/^.+\/(\d+)$/$1/; # extract id from Location header
    die "Failed to get $what id from Location header '".($res->header('Location') // '')."'\n"
        unless $id =~ /^\d+$/;
    return $id;
}

my $billing_profile_handle = env_or('VOXPROV_BILLING_PROFILE', 'my_test_profile');
$req = HTTP::Request->new('GET', "$uri/api/billingprofiles/?handle=$billing_profile_handle");
$res = $ua->request($req);
if($res->code != 200) {
    die "Failed to fetch billing profile: ".$res->decoded_content."\n";
}
my $billing_profile = JSON::from_json($res->decoded_content);
my $billing_profile_id = $billing_profile->{_embedded}->{'ngcp:billingprofiles'}->{id};
die "Billing profile '$billing_profile_handle' not found: ".$res->decoded_content."\n"
    unless defined $billing_profile_id;
say "Fetched billing profile, id is $billing_profile_id";

$req = HTTP::Request->new('POST', "$uri/api/customercontacts/");
$req->header('Content-Type' => 'application/json');
$req->content(JSON::to_json({
    firstname => 'John',
    lastname => 'Doe',
    email => 'john.doe\@example.com',
    ($reseller_id ne '' ? (reseller_id => 0 + $reseller_id) : ()),
}));
$res = $ua->request($req);
if($res->code != 201) {
    die "Failed to create customer contact: ".$res->decoded_content."\n";
}
my $contact_id = id_from_location($res, 'customer contact');
say "Created customer contact, id is $contact_id";

$req = HTTP::Request->new('POST', "$uri/api/customers/");
$req->header('Content-Type' => 'application/json');
$req->content(JSON::to_json({
    status => 'active',
    contact_id => $contact_id,
    billing_profile_id => $billing_profile_id,
    type => 'sipaccount',
    external_id => undef, # can be set to your crm's customer id
}));
$res = $ua->request($req);
if($res->code != 201) {
    die "Failed to create customer: ".$res->decoded_content."\n";
}
my $customer_id = id_from_location($res, 'customer');
say "Created customer, id is $customer_id";

$req = HTTP::Request->new('POST', "$uri/api/subscribers/");
$req->header('Content-Type' => 'application/json');
$req->content(JSON::to_json({
    status => 'active',
    customer_id => $customer_id,
    primary_number => { cc => $cc, ac => $ac, sn => $sn }, # the main number
    alias_numbers => [ # as many alias numbers the subscriber can be reached at (or skip param if none)
        { cc => $cc, ac => $ac + 1, sn => $sn },
        { cc => $cc, ac => $ac + 2, sn => $sn }
    ],
    username => "test_$sn",
    domain => $domain,
    password => 'secret subscriber pass',
    webusername => "test_$sn",
    webpassword => undef, # set undef if subscriber shouldn't be able to log into sipwise csc
    external_id => undef, # can be set to the operator crm's subscriber id
}));
$res = $ua->request($req);
if($res->code != 201) {
    die "Failed to create subscriber: ".$res->decoded_content."\n";
}
my $subscriber_id = id_from_location($res, 'subscriber');
say "Created subscriber, id is $subscriber_id";

$req = HTTP::Request->new('PUT', "$uri/api/callforwards/$subscriber_id");
$req->header('Content-Type' => 'application/json');
$req->header('Prefer' => "return=minimal"); # use return=representation to get full json response
$req->content(JSON::to_json({
    cfna => { # set a call-forward if subscriber is not registered
        destinations => [
            { destination => "4366610001", timeout => 10  }, # ring this for 10s
            { destination => "4366710001", timeout => 300 }, # if no answer, ring that for 300s
        ],
        times => undef # no time-based call-forward, trigger cfna always
    }
}));
$res = $ua->request($req);
if($res->code != 204) { # if return=representation, it's 200
    die "Failed to set cfna for subscriber: ".$res->decoded_content."\n";
}
say "Set call forward";

$req = HTTP::Request->new('GET', "$uri/api/subscriberpreferences/$subscriber_id");
$res = $ua->request($req);
if($res->code != 200) {
    die "Failed to fetch subscriber preferences: ".$res->decoded_content."\n";
}
my $prefs = JSON::from_json($res->decoded_content);
delete $prefs->{_links}; # not needed in update

$prefs->{prepaid_library} = 'libinewrate'; # switch to inew billing
$prefs->{block_in_clir} = JSON::true; # reject incoming anonymous calls
$prefs->{block_in_list} = [ # reject calls from the following numbers:
    '4366412345', # this particular number
    '431*', # all vienna/austria numbers
];
$req = HTTP::Request->new('PUT', "$uri/api/subscriberpreferences/$subscriber_id");
$req->header('Content-Type' => 'application/json');
$req->header('Prefer' => "return=minimal"); # use return=representation to get full json response
$req->content(JSON::to_json($prefs));
$res = $ua->request($req);
if($res->code != 204) {
    die "Failed to update subscriber preferences: ".$res->decoded_content."\n";
}
say "Updated subscriber preferences";

$req = HTTP::Request->new('GET', "$uri/api/subscribers/$subscriber_id");
$res = $ua->request($req);
if($res->code != 200) {
    die "Failed to fetch subscriber: ".$res->decoded_content."\n";
}
my $sub = JSON::from_json($res->decoded_content);
delete $sub->{_links}; # not needed in update
push @{ $sub->{alias_numbers} }, { cc => 1, ac => 5432, sn => $t }; # add this number
push @{ $sub->{alias_numbers} }, { cc => 1, ac => 5433, sn => $t }; # add another number

$req = HTTP::Request->new('PUT', "$uri/api/subscribers/$subscriber_id");
$req->header('Content-Type' => 'application/json');
$req->header('Prefer' => "return=minimal"); # use return=representation to get full json response
$req->content(JSON::to_json($sub));
$res = $ua->request($req);
if($res->code != 204) {
    die "Failed to update subscriber: ".$res->decoded_content."\n";
}
say "Updated subscriber";

$req = HTTP::Request->new('DELETE', "$uri/api/subscribers/$subscriber_id");
$res = $ua->request($req);
if($res->code != 204) {
    die "Failed to terminate subscriber: ".$res->decoded_content."\n";
}
say "Terminated subscriber";

# Careful clients check the termination: the subscriber is gone from the API.
$req = HTTP::Request->new('GET', "$uri/api/subscribers/$subscriber_id");
$res = $ua->request($req);
if($res->code != 404) {
    die "Terminated subscriber still answers ".$res->code."\n";
}
say "Terminated subscriber answers 404";

$req = HTTP::Request->new('PATCH', "$uri/api/customers/$customer_id");
$req->header('Content-Type' => 'application/json-patch+json');
$req->header('Prefer' => "return=minimal"); # use return=representation to get full json response
$req->content(JSON::to_json([
    { op => 'replace', path => '/status', value => 'terminated' }
]));
$res = $ua->request($req); # this will also terminate all still active subscribers
if($res->code != 204) {
    die "Failed to terminate customer: ".$res->decoded_content."\n";
}
say "Terminated customer";

say "RESULT customer_id=$customer_id subscriber_id=$subscriber_id contact_id=$contact_id";
