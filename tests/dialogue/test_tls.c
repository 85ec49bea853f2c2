/* test_tls.c - the TLS observer behind the whole engine: real handshakes (the
 * lab's, and openssl's on loopback), JA3/JA3S against tshark, JA4 against its
 * specification, the certificate, hostile records, gaps, the STARTTLS API, and
 * every split of every dialogue. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dissector.h"
#include "engine/engine.h"
#include "event/event.h"
#include "output/report.h"
#include "dialogue/harness.h"
#include "dissectors/tls/tls.h"
#include "check_main.h"

#define C MX_DIR_C2S
#define S MX_DIR_S2C
#define N(t) (sizeof(t) / sizeof(t[0]))

static const struct mx_harness_opts imaps = { .server_port = 993 };
static const struct mx_harness_opts pop3s = { .server_port = 995 };
static const struct mx_harness_opts smtps = { .server_port = 465 };
static const struct mx_harness_opts imaps_midstream = { .server_port = 993, .no_handshake = true };

/* A segment of a recorded dialogue, as tshark's tcp.payload. */
struct hex_turn {
    enum mx_dir dir;
    const char *hex;
};

/* ---- Recorded dialogues ----
 * Each is every TCP payload of one capture, in capture order (tshark -T
 * fields -e tcp.srcport -e tcp.payload). The expected values in the tests
 * come from tshark 4.0 on the same capture (tls.handshake.ja3, ja3_full,
 * ja3s, extensions_server_name, ciphersuite, tls.record.length), from openssl
 * x509 for certificates, and from the JA4 specification computed on tshark's
 * fields (ciphersuite, extension.type, sig_hash_alg, extensions_alpn_str). */

/* pcaps/pop3/pop3s-995.pcap: the lab's dovecot on 995, TLS 1.3, SNI mx.lab.test, USER/PASS, STAT, RETR, QUIT */
static const struct hex_turn pop3s_995[] = {
    { C, "1603010200010001fc0303e0a262944af99410b3e49c917afbe21e45eab42d3ccbc3d47d2f46ae2e8fafb220d841a9d0"
         "4c4bfbc2a13b65b68a37b03a63cc80bcfe95bc47097504713ce30fbb003e130213031301c02cc030009fcca9cca8ccaa"
         "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff01000175"
         "00000010000e00000b6d782e6c61622e74657374000b000403000102000a00160014001d0017001e0019001801000101"
         "010201030104002300000016000000170000000d002a0028040305030603080708080809080a080b0804080508060401"
         "05010601030303010302040205020602002b0009080304030303020301002d00020101003300260024001d00207b3cd4"
         "fc366faf8083bf562d61ec8de3382c86de74eb3e57860e641c91ff5a38001500c4000000000000000000000000000000"
         "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
         "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
         "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
         "00000000000000000000000000000000000000000000000000000000000000000000000000" },
    { S, "160303007a020000760303f36d0610494c5c12bab909b1a69599e214ba09792b42c77a6a47d318c673f53020d841a9d0"
         "4c4bfbc2a13b65b68a37b03a63cc80bcfe95bc47097504713ce30fbb130200002e002b0002030400330024001d002092"
         "6db0229ce9fd0fe161ddc381ccbb8fe5b830382e10ccf1e9cebc6d94bdf462140303000101170303001b1f151986106f"
         "cc92362bda575f98bdd1fedc9d7e6bbe1f6893cb361703030213ecc3a2a4705aa115f64941d06e3e0737f039b05225af"
         "956bf8ed5cbd2be04996e7dccca6d7a75436ca061a4db8ac3166584b899e748bf81c6aef2c41cb74aecf29b52eed91ba"
         "d0fa37ef3728c98599a3f54d7e8d2fd1fa7d9554ecc9e11b8039a6c1fb5c5da402e0a93f74700ba55cf2c2f94adb5cc6"
         "e19244e0f3b48ce0556516b3137563c18b8bb743183291ddcce0e7ed5a4c2edc5f420bf8c40d4464f07de590d5a664dc"
         "58d3d6f9a1bc21d8ea3cf0b2242fe733f6ceab40dee964f1258362546518cd505b0e92e2c41d2d8e11385f3249c3793a"
         "95ca79f9297a30a8553ff7609b50eb0aa8cf1a7b65c7542d4a703f35c016b7a38aca124fc95043de91a46e670a884b51"
         "54e07599b0625e714a563928cabb3d1f53bfec90a141d81fb1e7ff00c20fb34957aec1160a41db927c9d548b31d6d8d6"
         "44a257c85b72582e18bacbbccd0d0c19dcc87e2991c9cd91c11e69ed8bfb768d17b29696fd65f3619c8753fe79c21c38"
         "9d3fdc9d9edf0a715ee77640f1a9679d9b9097a641c83dc570246081ed199627db549fd2de9c9dff1f6d5e46b7f27e21"
         "a02ec78ac07c71328feb764f51ccbd750e5c64c122cb848351bf5252f44fe03b29cf89c975444ed0ba6f151d587c789a"
         "c27bb108eb99c5163e1852a7546bcc861304aee110979daa2d3a59b8727a7ab7bdfb1104e78f579e744a58b14ff5cff1"
         "b0dbf2f8a98bbb1426af37b340ca94c5ee3f1874c20d4665696bc7f325170303005fa5c2773d807ea7e487688d588233"
         "4a160baa7460bdb8a62f6ce248a684a0120c227c43b4e090049dfdc58137e031c0ed8458b1154dde9b7b884a3bfeb678"
         "5713ac2ecf5ea6fb81ddd6b866b6da8dada5b6ab66c21d7f5d67025959b05944b31703030045358dd1570d96aecf2850"
         "b49517285264dd2d8c73ab6c5c39cb143d2c4807e6949f25b8b7dd26949bed100c61b7b1c78769560cef7684a1a3f9c6"
         "331f140ca1e25f5791c9b1" },
    { C, "1403030001011703030045c01c2b5c885d56902b8ce9acbfe5e0b410e8898d5cd3624186f3142398a98743ff14c43797"
         "ad7ef434b94a0bc3002641120dd9297a75d49edb4784ee4b78ed8b295fcba15c" },
    { S, "170303010aa4eeb33ebb7778944056721a1c2da7fff52c3c46a06d2b7d83ce4d92257cb5c8a8efe87178068e5ac3ce68"
         "c060c646f9ac5ad7e360f5d8aff0fd61c38834319fc78977203027cbdf7dd9cd1d6e90273b02ae479bb64989dfc9f642"
         "d58d483d49f093ea94cd86dfaeb00c66a4930d7ee26a233a178c3374fff895c617cdd83cf37b88fe91c39d7ce8d87d18"
         "63fa84e932ce51211f38e906b8082892c88cff079100c6e3f12ecc007792b6681334ce16a3f86062693a81afb5e6dc00"
         "93c721758c3af24a848e57c0e108412c645dd3b629e06f45cc0301aaf2d783f77ae3c025bf443cb4a945e3dc60e472a0"
         "898d71ce83b0c27c471c0e99879c9067e14de817053297d93d3da0d5af5bc1170303010a1e407b0c1a907658d70f1f64"
         "aeac5ed6cb80776337478fa5ebe5179b69909a2861514d0b2cbdc6ec3ae281b1f3d580a666125943683cec4388215138"
         "9fcf763bd6b82a257d2f6af41c8835aa05d6c6c0dcc8eda6fca6eb2d1ca3e3e07b4c0c1106dfa4373c7982b0331a8647"
         "c7e0347a35773dfdff50bbc1fde22f6d067263c79c823997a24c3cfb1902c27de2d50821ad8fc966780651a32429f196"
         "6391a0cc99b7087b213e03c4bbd85a8e34aaeae092351f7a5add06e3bc2f0593e21a8fdb941fe049317a640113fb5795"
         "5148bc7fd7b823a66fcb47067e14fa42f67fb89d0bfcd10333c823c905e82e243b2679e8189235220b3579da559835be"
         "9d65e5c141a7278af424ba32f381" },
    { S, "170303005eb97e1e160174b20d3e68343554fcf3edeaadf1cc7c4d13e9590c4f923821ba317a0650f6fce61afc3ef6b3"
         "ec1f781969156b36c138bc807640f489e210338ae854184ec436d39d7a2178cb70f054c2d54ad3eb305d030287e502bc"
         "076a37" },
    { C, "170303001dfd313e2ba6b6800aa56a38b9438b9838cb28c01a5f1e77f3b159f6f045" },
    { S, "170303001681e814af1de96d7861e1b72acb3c76599e4b59b01475" },
    { C, "170303001fdafaceb9703510a73f15543152b0fe54cc7cc5025e64d876565ab44f3fcc42" },
    { S, "17030300215ada5980eba9aa0c2d07fd84e48f39d6c4289216f3c6d34894c33fd7aa1e6c955a" },
    { C, "170303001772ec659f71cea15bc7406408fcca11f7bc2226b72d86c8" },
    { S, "170303001d11d459b9550d56563caed6e6ffe00c7ceb0c28fb42888504b342a1b612" },
    { C, "17030300198ee81ccb3a2d6817614d320718c151afc3bb3fbc95f1e7b18c" },
    { S, "17030310110fb34e887f7b8123a32b999939fcf9f0df27d621f8536f5783a19fc164e127fff168d0f2fd02aacf616cfb"
         "81686db00e353088a6e022d6548e014d276c6e2bc16cb016476dd9628bcc853084ae2a3e3581bcd36fe447abc90afc8e"
         "78f15a6f57a464a64a57f0b7ad6771576544e8a32f5baf6a8c5f7f8c6ad0495912330db81435eb12a6927e132ff3e86e"
         "7f2b1b8caf8233ca450645348e0571ba965ed351288934abe9e58eab336ec50128df51ec968dff437ede9467498e8cfc"
         "d93def54abab064cbc90a4e063679a05bcc68b0cc667627330fc61162acf5aa5f2c06ed3fcd23d0a21d4efb3026234a4"
         "8857e5e83019100e97ac56928f8c13a38b63b86076843fd31a530a7f848672b240fcd252d1ac16b4d28c549398e531b1"
         "a1614b98e260f4783261ec9245b336ccf3a38d0ecdc42610a33197c52b7373d3192b5f681f9c2b7e433912ed200b09e9"
         "fa369d101f1d12ad600369f3a8461782b6044bddc93666c7968aff2448f38e340870c3584b557a6d8ed6fd7398a72807"
         "66a0b2f8e2e946674b3dadee281c4187b90699dc001dba7744da3cbe3a7c9af127c2a6fc27cef1e053bf0560dd2f63ab"
         "3013fea4e73b1c484807fd5c775baab2abec5c1542a5c276e5bf2a4885af926ee17411dbd1b1cf0971aab1d6d52a9977"
         "2c533da19b5ad7bed7ce5107c0cefb72072b104b618a3914d1ae7f9bc4646e3d28282d3080c04a2462bdeb68e3a5b7b8"
         "218fb71b6dc01ebe157c68b4a8efafcbf0762cfd00f7bdd2e0e8e16424cf4d9cc0b7e49bf19a2250c9ade2d57b74eeca"
         "c8aee0ddea9f0229144d506e8b191049a56eabb6cc734883751bc030feb168541a470aab15c57d50cdd9f37f1d293b30"
         "800bacf65ffe6d86960d7a60b01dd00b62b8a3b1c0591fe650a16a24cf1f517a7a246dd73dcc526b820b758f90ada158"
         "0f6a323799cf40a757ce1d0f2e32f49f4d7640abe2f6ded346e756494c4f47db5edf24c03493fa81d1aef5c5b4b04e0d"
         "6a06b2ceb4f80666fafd36f554fbc79a12a190ded26016a3ff2f833a0edeb17d4e29a9e272dc9f6bfd9896ddfeb5bad3"
         "16c26f4ab4950b67df68ba85deb160d931b106e24974cb3c4183d5ad37cf542b800138ea5fd3d5637f51effb976c9317"
         "777d1df7f4938e0dcbb0de38f48e4ea619ebdf098419d12e8492e463f155695cbba3d1ff9ea800bf567ba9ad1131a78a"
         "344dd51e7a43ca8ad433dd7fed46cdc88387f68a70e25d0f16a2396943f8a0b0a4f1adbe9fd468846c07f3fb2dbbc082"
         "e3b7d60f19e74c129655c0eeed058ef2371b09fabe829fd46c04cf4bfe89fcc8cafc112d99f8a9655367302242b29f5c"
         "c0eaab3b804e72dfa000ae3d53026f244df8e33515592cef5dce04787548aa7c59d8240917276d3aee74e9290e44e44c"
         "1896b30f131ef272503b73207a92b00105ff2693c2ba33da4553a673dc37f564f135be2ec494d9cffa91d98ca026e86e"
         "4f6a39ab0da71f3ee860cba12cfb8b20be1ef3d5b2b5c7bd409b4d5675acfc7b1fd96f719d10bf3b3e94ce61af77a790"
         "dcff5edf93cee9fe1e753555bccc5c77776a8bbacce4a85e63a379f72331596f7157907e76a39dc29aaf431830ae4478"
         "b31bc024d8237d45ec62ad2771c13ee5e586ad23b0c8cb85b5e359b6564902f958ed8b2f4f90d7e1a60d7603f5d274b7"
         "f3946d4ef84f24078545f7450a7b091af83f91943e84ebc50d85cf685450e1780a8e5d5ce427fbe5332b0b72c812a193"
         "69771e15b332519fbde206b0851f6832148d66f1d860441c8a04417c3bd79e177c44a4d4921d33eeac26c423f8ed6981"
         "3dfc35b6caa48f6737228fcee17908c3810a35eddde69e166b6987acd4e72b9b12efa90e5f396c50d68747bc25a10128"
         "8a198087eafcb61f98a31d35e1dc9820365a2c92972f4206b211d907ca43778a0aa43473019bab8e01b2ebf02d1fc8bd"
         "766aa759f81bc3f465059eb03cb0e5ab66f7b8e34d83e2e37540901b2450b479c43f83986f37d10ee9eea22d30790511"
         "11c9c0f3cc4f8844" },
    { S, "ff960533e89107036a1dc6442736d79886f883fb4627a672f05a83d0f34bcbfd85ab81deeebdf492e49b37483c5ca410"
         "a602ae13468b451ca9d5753c8b0259187d73bdec7778dc30f786698611b7de2420db04aad3d475916f0bf52a39b07277"
         "db58189a558dabb2db37bc406612808ded8389c61dbc987f6f2410a0288cef0292e8e89c099cd79681b27ae5db9c97ea"
         "500ecd6e830772ed580f1183000fb7bd9118935164eddf623a8ad6423cf86caa4ba5e438e4e8cd44683e9748c2499868"
         "dc86589ba553fc744bfbd04c6930abf183ee4ecdd1f474567be1218bd2cc1473701281bc245f55913d787b6fa97687b2"
         "18e193df03d630a5e9ca9cc331f480e5d1171b5077e6834d443d86df300718d9367e0ec10ef36f63369a6e59931cdbf5"
         "f7f25989f66e84db911eea3ad3ad0a86ecedf4b82ac48036cbb0c991548934399769dbc6e8960a3cb954e87906acb67f"
         "b784729d0fec0af7c6c02ba50eab33191fcd5aa95a96333690c51dfd8367c9d8ee21016e6a7a8ab0c29caa914620d773"
         "6412bc53e0d5edba2179089d5a5d7b324ed954fe54c82490106d9c33784e5940acc6fc6282117dbb651f8cf3be2334a2"
         "a45a21d51ab6a3be5423f434dbc41c53d50727d6c9e158d104d494d356782c52ecf946cd0b4c3bd6f3273f8c742f3e55"
         "d35f0b81890e5aba22b04b786b1c7a8a0064786f3ce6e5e75a735f7606a7ad6cbc9c1e1266753eea474ed880e4f52c60"
         "6475d968f986c7635f4956bcfcd30893730cdd436b5060a089f630272bc3c01a3b0aefb11467cf80ab46f1125ebb708c"
         "210822beb8cbac14c94b9e2d330157b429399f3bced4a86b56a6925443b439ad93e3c2076771f434ab03209e23b79e31"
         "2f188b0e76151bd1847b6b273695d1b768b03bd77d82983231fce8c2324d7410ca5cf053ab193cd99334d7a2ef7bffd2"
         "8fde92277602c83d65a720ced663dd88795453832bf87165db722c5305eda0dae001ce49820164c5fb31e1bd6a588ad3"
         "df1b2f9c8bcb6dfd22a16fe0b33cf042a582da0ffdf64d82d6c87b0a41872a012a03e312ac65c77af9a2e392192b3524"
         "327f2fbbcb15add94ce629e90bf6fb253de5b967d83e3682c658c1e2bf337bf18365b284b91928d7023246007fd42c28"
         "1eb1ee9efda66c4eaa1f8e7e5795305af02104381702f8d095532c96a8424e78ac917ff48a1eee5f053f6c2653f8f12e"
         "d87b1e09fd993b764634df2ac5479eeb64035fe563138aba0464e4f84d246cbcf3083e09df93bd07efe9edea5d7d277a"
         "0eb66af458e46b6336ac3bac1191fa51d815f459fb7b93e195bbe060a0e5cc530180b0f13b8236a41184e7ebdc75217b"
         "03c27215ffbc0138cc96bd08f42d774ac2cfaed69134c8d6eed872528c091fe60105932012487fc87cb5dc573850373c"
         "e4ab685a1b955431c3e58a119141c4e19304e812878e63230c9f0509af722226b95c2802369519864e54b723d631d7b5"
         "3988647a7cf80cc3d5a1b783ee923d364278f58272dd8a9dd46b80fdba3e549255c7df4b78106b842abbc60c44928152"
         "9c672155ca009d23114d94d68420becd1d306ebcacb6c711b30684a2517343f8637305125a4cf608d1368b385550bbf5"
         "c5c21a6380e019115995bf75a392f8e26ee3f1d28ae6c1c4ae07bdceef485bb3c2419902f2818c5342e4e797b5f441a2"
         "f86612db22968a79d6790e7fcbe61ac1b5dd5d60c150a3acc8c7714f74f7d2edd517247822bf74d6fe536f1f7959a09a"
         "327536402134a5c41bdad314417ba0bafb5cb0483dce0b723f3aac22ceb37d4af0c3faa6a32e07d74eff8fc404ab03fa"
         "58eee0932bd0903538b2db6d2b78196bb188c1056ac68d73880613fb37c93275b009e633eb6d70674548aef2df677597"
         "bd799ec1b544f6bd12afb7a236bfad218cce350f09c68bebd6dafb55df36d370c3fdd33e94292ccfd1e7f18b732e91ea"
         "c5d5e5800375a62aa820ab5b7fc64753ce8e2d78f9fbeaf6df74762e79c05998b22c30c085e8be2eec12e7a873fc9474"
         "3b143d49b1603814" },
    { S, "df51b23d3db3a50ee8a1a9506c972ec8b2ab81de00214e73bfdc53cdccb7554dee2a2ac6e6eeedda5004ffb7bd2d0db1"
         "b24278d544b83e58ffa262bd71aed496395b7831f18a631bb8d9093e425d0da2353ede3d5a9895cc99389279a1bd4ad5"
         "4c4fb1ef99641b246aff6dffb556edb10d7d7c04b198e750c4e75a4ffd7b5e64996214d0dfc319235cf41f99241fee5a"
         "3525a8b2fe9810705e9cf918245ce961122df248eb693bff91509491885899befc01809643cedfecbb9c9793052625b1"
         "ab95cb633233a8ac315bbb92c41908743ee2f83c3bc281e9f61985e11fe97f5f7777d78f525f11d3ccc306d6195cf662"
         "b2ee1480ff5a6acf4737593cca3df20ee9f8b3f681cf1c2fe3ef22e2605023b58afabee9b36c67788590eaf4f92d1e58"
         "1f78dab948999dcabc64480bbcc29bb47bbf736ae1579ea137b33db2da53aa7dc4cfebbd034f63687e0e96a18827b8ef"
         "20057ab8cdd0ebf82125dd2d5b97b889133d4db23e2a9b4fea4c04cca2238773292c5aa81ff71b10aea37ac812b01c17"
         "e507c4aa9f49b4bda6f901b682c5451e332221c03fd4b0347884a5298afa3aa8aac57a0f35a49d6638afc3631d183080"
         "a36e18f9163dddbd5adbf894785a06f001af20d95d3591bdeee6fd91ad350f4cad2232e99a0914738711c2a8d6a655e7"
         "cc4b49f379a06aae3ff85068abf4d5340934f7e1815ab9ec14caca2a9023da2512a94048f97f5b0be965d15fb3010b7c"
         "3efb0d5d732ae4b0baeed1c0632de3e258c367a6080112a94a9c0daa922a3178237d44a0d791b1d3db5e185ab127cfbb"
         "39191a85e8be8e4aec67c1a91a07c315279049145d6a500330184daabadcc25059c7431f50315e4a49b8a21d6002c93c"
         "5b150b6082cc7633759ad2d560cdb22b52d3a745e4781b5cec7466257643720912c2ee3c0e7492d55e4ea53eaf7ed301"
         "3a653cde01d13900e806ccbaca95c243d81e6e687015dc0711e19773d3eda7a0ce7be998057d1914ff1f25eb21f141c2"
         "2f9899bacff7ee2a7aff0d4992bf948257ef70ede934b4b5f4ba3a62e27e1bfedf49fcc36b2202ab703d5863420e1063"
         "30cdb9c445f97f4eeb5df4d2e7fc61e6fe80686bf4f7c7c96a4174641cd148cad93f183df2a3a70caea68cdd0003f153"
         "c0d24a15fefcc0d6839be186019564949ba01ee11354029f163f61bb3aa3eeca96bdc84bc7f2ceaa2f0bf740f1d8a997"
         "e16c7ad1f7105e8fc0bc36af97ab5dec1ff2500a72ba9bb1911862f655e0277a0c14c695ee327942cad08aeecfe3ac34"
         "446a9f1aad09cb7f16cc18580d5f56a37682a32c3fb75fffeef52fc0792ee82bb3ff41caebd2d5aaf3800a0b3fbd6cfc"
         "f11d3f701662fed2c42eb7c424bfc953fdffe0e40f16a0e60de8efa02976eea4e6db9c36f44e12a6f2a64778a4ba3e58"
         "ce547e63ad52f1fbbd358f6fbd1f1a6d71052bff7e70823940b87076c535f4ebf6448db285191ff6e07216e715eaf2b2"
         "c606da80e6c9f9037bf856f714aba74353d83d01eaa8ff875ab13d6136ee2f3591d8035c7cebcfa18b3f82fe04494e72"
         "a6d1425cfc55a8c4b6f2230986f4217cceb7afb09ca8871851b8a208cd35139d59c0428f2f93b03911285bfbc8e4b39f"
         "537150ee6b66d6b3dcd66ae7e42a9b3c85602b68799183c13f7a05880d3f1e116b322213199a08c516883438e13eb4c3"
         "81bd938ee5cd17a2607c5f3ee74fbba2dc2151d431de" },
    { S, "170303026a2b2ddd5b2d3a55c593cca8d295653691171d85b27bb8b367830861435e495d352280633475829a9005e91d"
         "927b0b22b8a8b26a35c0c9511534b78269a44cd5a3addf4717424f2bc7be4f8a46628f829322d68de6618c6dea9875a2"
         "1ab43da61c9be750dd5be4253d66d12d390d8647769cd898eed4f90fc99a7e6f911061ff3af5bb9e9d582f682f9bd5a5"
         "fb0a0c79a69496d4b45b0efd8705c9169b713acb910132c4b98d2396dfedb21e2c18ab614b9adef5242d313de6b33e34"
         "d4ae580828622a7b1f77cb15be75b0a0396ee15e33848f479d6de5e8571c26c1a24226060982a50b96464b83522257d3"
         "56420adac68688489d7a329806d4786997bb1f39bd47e1887b1a848fec324fece914a332fd1633ea4f3a7e6585eef489"
         "13f52a1335e7076ce0044311a58b8381c58083e3cf6d86f6fd454ce1bbcbde43905fa742e39c1ca49dc2015cdb3c910b"
         "cb052040ebce58d45c3dc24109bd4648eed28c58049e69a3ebb91de28784375ec5cd0187d0e795aaa3da200e9f49f6af"
         "470cc730d2962161ae8dab2ce21fa98df4549c8936acfc44e1371e21714006b53cbffcae63b3366e0f03266957448baa"
         "85b6f71aef61c684f35eee87b2ae2b1b1d502f07253c7f57a5c91bbecc8ca06dc449d2897dd9aba6f8acea6665ae4681"
         "00716b7c962c2cc535e3cd4a6d031a20ec80e378343214cefe3b358e3c97196f0a41655ab394a49f556b22bec3847872"
         "7c450e810c6b7d74e746de19e2bf33ed5c19e0b2a2136ecfa8e068c6ad16585e62117b6a99bd03e6262ad281a3164697"
         "5c52ea63ad739a81b5eef9ef9f827d3593f565107f2cb858231a34307a98fb64739918aed11e474e32ffa81bf336e3" },
    { C, "1703030017a75bd80f851d671e517df504b92899ee127c6f80f8d6e2" },
    { S, "1703030023a8fabf2ca1bc872b5188d181a3f10616921c776c4b2f8085d61492c49563c6d88556a4" },
    { S, "170303001368f6e661f81a62c16c974026cf5f2718a84030" },
};

/* TLS 1.2, recorded on loopback with openssl 3.0: s_server -tls1_2 -cert leaf.pem -cert_chain ca.pem -alpn imap -rev;
 * s_client -tls1_2 -servername imap.example.test -alpn imap, sending "a1 NOOP". ECDSA P-256 leaf
 * "CN=imap.example.test,O=mxray test" issued by "CN=mxray Test CA,O=mxray test,C=DE" */
static const struct hex_turn tls12_chain[] = {
    { C, "16030100dc010000d80303aa6d4428e385c7e983243a88cb0159a5020a60349616d929d320d15a6e872ec1000038c02c"
         "c030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c"
         "0035002f00ff01000077000000160014000011696d61702e6578616d706c652e74657374000b000403000102000a000c"
         "000a001d0017001e001900180023000000100007000504696d61700016000000170000000d002a002804030503060308"
         "0708080809080a080b080408050806040105010601030303010302040205020602" },
    { S, "160303004c020000480303485247728a496af259a8d284fa2205171a535e6cf8d59798003288a7c08fefff00c02c0000"
         "20ff01000100000b0004030001020023000000100007000504696d61700017000016030303860b00038200037f0001bf"
         "308201bb30820160a003020102020102300a06082a8648ce3d040302303a310b30090603550406130244453113301106"
         "0355040a0c0a6d7872617920746573743116301406035504030c0d6d787261792054657374204341301e170d32363131"
         "32373130353735365a170d3239303330313130353735365a303131133011060355040a0c0a6d78726179207465737431"
         "1a301806035504030c11696d61702e6578616d706c652e746573743059301306072a8648ce3d020106082a8648ce3d03"
         "0107034200049e730b447e50f7771d8f50e73f68b9ba9c576e69b0d335b66347f7927499be7a5ee8fd99165cb8e67d74"
         "ba6871b2be90edd8924732d34e990feb092e81181f64a360305e301c0603551d11041530138211696d61702e6578616d"
         "706c652e74657374301d0603551d0e041604145b391aec74abfa18ab8f0b85e472aa6bd6faca27301f0603551d230418"
         "301680141061c92df42ca4e520e7e9f55cf9f6d92cd10b44300a06082a8648ce3d0403020349003046022100e070245b"
         "caa99031dfa927fba62479ce0e2f3edd7c1b7e75fd6093a72ed32932022100b5c8cc22fdb7981542d5c5d5f3ca5f6cc7"
         "beef5da4c6aff7eefbd49b80ddc1460001ba308201b63082015ca003020102020101300a06082a8648ce3d040302303a"
         "310b300906035504061302444531133011060355040a0c0a6d7872617920746573743116301406035504030c0d6d7872"
         "61792054657374204341301e170d3236313132373130353735365a170d3336313132343130353735365a303a310b3009"
         "06035504061302444531133011060355040a0c0a6d7872617920746573743116301406035504030c0d6d787261792054"
         "6573742043413059301306072a8648ce3d020106082a8648ce3d03010703420004b4468a65efa743e5b1a98c05666656"
         "9d32797a42e11f973f4aea19ec48b305f44f6f796c9f908978269631b9352853168795e1c9546edd5c24857e0b23d312"
         "9fa3533051301d0603551d0e041604141061c92df42ca4e520e7e9f55cf9f6d92cd10b44301f0603551d230418301680"
         "141061c92df42ca4e520e7e9f55cf9f6d92cd10b44300f0603551d130101ff040530030101ff300a06082a8648ce3d04"
         "0302034800304502201d01e2c158e4b7d760926e1b8e2462d58a245bdb56479cd39ddb3de5838e7de1022100a81d3795"
         "b4b63b068d68725eb0ab05d5bd023b72d7bae1a17e17c27075f820e416030300730c00006f03001d206704c4ea3bb39f"
         "7c8c5cd46de6b13f978b2278acf82448ffe812455a3c435e3804030047304502210096404efd55745b1a004a550049c7"
         "07e96a11b1e441318f6d1a037af2c747059d02201a0c76f9f8b9765c1ce9b301eec7ab697c1bf015568e44831429049f"
         "e3a3a33b16030300040e000000" },
    { C, "16030300251000002120f44ae532d606212e1bcfd9ddce522f25ee1069bcad08da73fb2b6f4e23c0fb1e140303000101"
         "16030300283d85edafd7310df43cc6eaff4c08074caa83d22df60898a9cc4e1a6638ae640211e0f48bf2b0ad5d" },
    { S, "16030300ba040000b600001c2000b030a7eb0dd1fdf68e57d8c750a1a2840fe46f4da6afc12c80b6c622da0294fdf531"
         "cf886917d7b2685b8d392cf624705430d1f29fedef1303954b4ea1bb3500750d8b29be29be25c78f551b1b5815b585cb"
         "162085f93b370f6deb80bd22c3c9cc0a627ea93e50c526372274c09f30a53b1ba60fe1a01729f22c71253e123fffad8a"
         "d3faed8da0baf501790452ac28d85cb2869bdb08f541b34af6513a54ee3578c67d3f318a40378bc422ae60bbe751e514"
         "03030001011603030028d4afe439fb2b466c65a5cfaef97ba238c10e42be44cd435ef846fc7e20952a7a1ed640c411a2"
         "9830" },
    { C, "17030300213d85edafd7310df5e9b31aa635d386d648fb17ba64a60b00ba38e34af26dfbf7a2" },
    { S, "1703030020d4afe439fb2b466d499c8c853e1593718248ded272af10c2e1c603e507a26270" },
    { S, "150303001ad4afe439fb2b466eb42ea2679415ca25da1269edf3292e50c3b3" },
};

/* TLS 1.2 with a self-signed certificate "CN=pop.selfsigned.test" (openssl 3.0 on loopback);
 * the client (s_client -verify_return_error) refuses it with a fatal unknown_ca alert in clear */
static const struct hex_turn tls12_selfsigned[] = {
    { C, "16030100d3010000cf030345a02b59177afa16e1c5dab70ccc00047df4cdb981c0736e9e6187755443d2aa000038c02c"
         "c030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c"
         "0035002f00ff0100006e000000180016000013706f702e73656c667369676e65642e74657374000b000403000102000a"
         "000c000a001d0017001e00190018002300000016000000170000000d002a0028040305030603080708080809080a080b"
         "080408050806040105010601030303010302040205020602" },
    { S, "16030300410200003d030322e5fa174260429db9d2aa5a38cbe41434e201f94fe254d399fa1c6eb549fb0e00c02c0000"
         "15ff01000100000b0004030001020023000000170000160303018b0b0001870001840001813082017d30820124a00302"
         "0102020103300a06082a8648ce3d040302301e311c301a06035504030c13706f702e73656c667369676e65642e746573"
         "74301e170d3236313132373131303832305a170d3237313132373131303832305a301e311c301a06035504030c13706f"
         "702e73656c667369676e65642e746573743059301306072a8648ce3d020106082a8648ce3d030107034200049e730b44"
         "7e50f7771d8f50e73f68b9ba9c576e69b0d335b66347f7927499be7a5ee8fd99165cb8e67d74ba6871b2be90edd89247"
         "32d34e990feb092e81181f64a3533051301d0603551d0e041604145b391aec74abfa18ab8f0b85e472aa6bd6faca2730"
         "1f0603551d230418301680145b391aec74abfa18ab8f0b85e472aa6bd6faca27300f0603551d130101ff040530030101"
         "ff300a06082a8648ce3d0403020347003044022063e9a958da2842f4bacfdb492a66c45da8de17e797348318533d8e61"
         "c50497d902205317663af3a0ee05f76035ffc98da0d279f0094e2d2fdda8c5d24a3732c2733a16030300720c00006e03"
         "001d203d718bfb72058092508da055a4bd2385385aa4120cfea44456c398e4aa89a92004030046304402207a52a5281b"
         "ed64ec6c8b31d29848e0259a56836c9c070b74b572f1e958616b9b022053d726daeb45473f5687b2ba2a54d07ff7850d"
         "8b4d26a9f4615a6185c5d2af3616030300040e000000" },
    { C, "15030300020230" },
};

/* TLS 1.3 with a HelloRetryRequest (openssl 3.0 on loopback): the server wants P-256
 * (s_server -tls1_3 -groups P-256), the client first offers an X25519 key share (-groups X25519:P-256) */
static const struct hex_turn tls13_hrr[] = {
    { C, "16030100e6010000e203030b7e776bb16882a364baa09c1f0544b5eb7fcda2f91aac71edcedf8525f2645320ef94e5be"
         "9f146ac59c381597e7ca57392627d38a0a9a83ed8c2121ab150cd411000813021303130100ff01000091000000160014"
         "000011736d74702e6578616d706c652e74657374000b000403000102000a00060004001d001700230000001600000017"
         "0000000d001e001c040305030603080708080809080a080b080408050806040105010601002b0003020304002d000201"
         "01003300260024001d00205cb082ff4e204ef282689cb0ace9a87437b4733fa648ccbc2669d2bd3f65a61f" },
    { S, "1603030058020000540303cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c20ef94e5be"
         "9f146ac59c381597e7ca57392627d38a0a9a83ed8c2121ab150cd411130200000c002b00020304003300020017140303"
         "000101" },
    { C, "14030300010116030301070100010303030b7e776bb16882a364baa09c1f0544b5eb7fcda2f91aac71edcedf8525f264"
         "5320ef94e5be9f146ac59c381597e7ca57392627d38a0a9a83ed8c2121ab150cd411000813021303130100ff010000b2"
         "000000160014000011736d74702e6578616d706c652e74657374000b000403000102000a00060004001d001700230000"
         "0016000000170000000d001e001c040305030603080708080809080a080b080408050806040105010601002b00030203"
         "04002d000201010033004700450017004104dca115490c08028b8018d4e34827df987b2591b649bf24ba3378905c937a"
         "366fe0f20b74210ec3f3069a2532d83df8b563df17e0c56563ca88c4248bf4e611ec" },
    { S, "160303009b020000970303878b49aad1d9a8f83be55fa8c90042cbb461ae35a06b7665bd623ce4a3787f9720ef94e5be"
         "9f146ac59c381597e7ca57392627d38a0a9a83ed8c2121ab150cd411130200004f002b00020304003300450017004104"
         "0989c5271bbfb897dbb012d158e817550920619fe65a0444790205d85250ad365d83d3c8b03bf32743f08feba22b6abd"
         "92e0b0173d3c6c04e04d101f7280be9c17030300172e4981a71bdef73df7ae1c01c7136ce8a4c1c1d9e72be317030301"
         "dde152c4e89018a69100bee5287fd361311299c3f3edea709ec627c6b98087dd7b33f49d42ce1227b6d4a13cafbfa500"
         "a6d009c726eeeb719b3fb715bdd20b113f69396dbc022b02f026c09331ccc6dd89d4abfefd906b96daf46a6dee99b72b"
         "cc5c87cc631c9c7768dc8903428a4390801f81dbcd1fce08fad1d62ba817b32e27ce9bc18e329d224a0ae54192130eac"
         "894e985c9f683ea596b4c9047417714e9fe746b07b9d499ebca522e1a0ebf70ea4baa50e365a8999a051d2065aa6885e"
         "9c9ff738d8a4d949657cd06c34e3ed6d4093bb3bada3223565c81f3d27436a8df73de8002e82503434e1d43f7523c8bd"
         "0266681047446fdb06088c5f9ddbaa8c761e8b46a73ce408495c12a8e6dc737382be4c8f59a6032737cf3ca366e2b504"
         "58c6930f1fb77d9e6a8079cf084e28427275eb66ceb9f33b46c2e40b88318c0e76dfe7f30671f19452444b016ac1f603"
         "7195a1a952584c3752d736247a47aa9d64ff20a25d7f6edace0d88920cac5a836661fd628a6f52990d7a1ca4c230bb9c"
         "9928e37021a2b3f8d90ded515ecccd39f8ed9e6bf02d4d93f0ee30320f58e9f3bb8c4b2cfa702678860a51f69bea06fa"
         "c6e467e49ecd5e1644f89d9349f7da077c40e8fef758efc039dfea52be08f85c9743c72a88dcbd49b2a3eabea4061703"
         "03005f4ff35b53bc04894624a8bd15000e6554526c56bdd947d1535b03725ff8211b67f57681a5780673ae09cab0436f"
         "47895f917714046718037f58b9b9df20177e6fd795e415df17abbdfce2d7fe1546d89c1b4d2bf66b745fdd09a4bee77e"
         "506e1703030045246578a092667b5344fe953805c6f292f9b96df1f8db0475979b55a4909161e56565e323a204a730ea"
         "db41b088b46889c7dad60fa2b073a3babd48d84475b3e320aca9ca1e" },
    { C, "1703030045a20dfce51c6f5a84023474b96b61feb64c1c44713ac729ea163e1f76c71c86bf5b54e65a711e66dfb8ac30"
         "900d03928e309cdd703d27a182a5bfdfc5a022c1dddef9b1b31b" },
    { C, "170303001a8a190402872eb0d9e58216029c912c122638724b138e879406bb" },
    { S, "17030300fa4d434f455bfc089986268f29949ba5b5bf239a82925080d5e22af70c2ae6b8f80f71b421ce50dba30af162"
         "bb254ccad4daf70d59c3a93b20efc154741056e63cc23c4863e3aad28aab31d8edea8ff6aa09e1033bfae1db23049012"
         "59469ac8f78fef77e7d52c7b1d641a02f1c301803a5c1664ada5495a583a69371154703dfcdf7ced49e9bb2f31322029"
         "dfb45769903c2ae1b593bf97b6d9e9f9a5e8f2650bbb58827805d6f62e4620bb43c7440789d88c302df952fe0d0c73bf"
         "4642b211d172fc39473a97d301767c8fdda2ebe7a263f588066fde9b8943a309b2e8a02a9afb06b7e52c46b859bb97ae"
         "13230bc4ed7aa37d72d5d2cdc2f3c5" },
    { S, "17030300fa1c078272e519341082328a12b50188367ffe0ed5d8fda360e0cc96a52ac457d8ccdf20d603a47527cc9544"
         "f005a94033d8d9435cf1a64287308fa4f699b05db914975541353865796f4e1d7d54c8de2e9e64fbfa31c9649c409ca1"
         "6776d68a8a2f1ce296e77c01a18e2bc1d7d00528bfc3b3838f18f62d0f2461fa3eec3418cc6ab038a6a45c0a2c68d145"
         "3a908fc1f4f8a827b861dc9ed02767aaad8d24f07a8195bb2c330195f6d1bda9884abd544e5fc208afb559b028da5780"
         "cc3cfd89fe6a704e3d9208cbcab33ae0517d77d8a72dc0e438878905de37c92d6b1f6fe287793acf841052e0b004ea12"
         "6fca2d17ad13c35f8d21efbbf1dd84" },
    { S, "1703030019f6132988192f255f8a32d2e6b400dcea9362305b4551a98af5" },
    { S, "170303001330349b6b9ece74f96c530a9e6b80b1bb98fbc3" },
};

/* ---- Helpers ---- */

static int hexval(char c)
{
    return c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0';
}

/* The turns of a recorded dialogue, decoded (free with free_turns). */
static struct mx_turn *load(const struct hex_turn *h, size_t n)
{
    struct mx_turn *t = calloc(n, sizeof(*t));
    ck_assert_ptr_nonnull(t);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(h[i].hex) / 2;
        char *b = malloc(len);
        ck_assert_ptr_nonnull(b);
        for (size_t k = 0; k < len; k++)
            b[k] = (char)(hexval(h[i].hex[2 * k]) << 4 | hexval(h[i].hex[2 * k + 1]));
        t[i].dir = h[i].dir;
        t[i].data = b;
        t[i].len = len;
    }
    return t;
}

static void free_turns(struct mx_turn *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((void *)t[i].data);
    free(t);
}

static char *run(const struct mx_turn *t, size_t n, const struct mx_harness_opts *o)
{
    char *out = mx_harness_run(t, n, o, SIZE_MAX, false);
    ck_assert(mx_harness_all_json(out));
    return out;
}

/* A field by dotted path as text: "null" for a JSON null, "(absent)" when missing. */
static const char *get(json_object *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    json_object *cur = o;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save)) {
        if (!cur)
            return "(absent)";
        if (json_object_is_type(cur, json_type_array)) {
            char *end;
            long i = strtol(tok, &end, 10);
            if (*end || i < 0 || (size_t)i >= json_object_array_length(cur))
                return "(absent)";
            cur = json_object_array_get_idx(cur, (size_t)i);
        } else if (!json_object_object_get_ex(cur, tok, &cur)) {
            return "(absent)";
        }
    }
    return cur ? json_object_get_string(cur) : "null";
}

/* The field at `path` of the nth record of `type`. */
static void expect(const char *out, const char *type, int nth, const char *path, const char *want)
{
    json_object *r = mx_harness_record(out, type, nth);
    ck_assert_msg(r != NULL, "no %s #%d", type, nth);
    ck_assert_msg(!strcmp(get(r, path), want), "%s #%d %s: got %s, want %s", type, nth, path, get(r, path), want);
    json_object_put(r);
}

/* The number of elements of the array at `path` of the first `tls` record. */
static size_t tls_len(const char *out, const char *path)
{
    json_object *r = mx_harness_record(out, "tls", 0), *a = r;
    ck_assert_ptr_nonnull(r);
    ck_assert(json_object_object_get_ex(r, path, &a));
    size_t n = json_object_array_length(a);
    json_object_put(r);
    return n;
}

/* How many anomaly records named `name`. */
static int anomalies(const char *out, const char *name)
{
    int n = 0;
    json_object *r;
    for (int i = 0; (r = mx_harness_record(out, "anomaly", i)) != NULL; i++) {
        n += !strcmp(get(r, "name"), name);
        json_object_put(r);
    }
    return n;
}

#define T(path, want) expect(out, "tls", 0, path, want)
#define SPLIT_OK(t, n, o) ck_assert_uint_eq(mx_harness_split_check(t, n, o), SIZE_MAX)

/* A byte builder for crafted records. */
struct bb {
    uint8_t b[1 << 17];
    size_t n;
};

static void put8(struct bb *b, unsigned v)
{
    ck_assert_uint_lt(b->n, sizeof(b->b));
    b->b[b->n++] = (uint8_t)v;
}

static void put16(struct bb *b, unsigned v)
{
    put8(b, v >> 8);
    put8(b, v & 0xff);
}

static void put24(struct bb *b, unsigned v)
{
    put8(b, v >> 16);
    put16(b, v & 0xffff);
}

static void putn(struct bb *b, const void *p, size_t n)
{
    ck_assert_uint_le(b->n + n, sizeof(b->b));
    memcpy(b->b + b->n, p, n);
    b->n += n;
}

static void fill(struct bb *b, unsigned v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put8(b, v);
}

/* A 16-bit length placeholder, filled in by close16. */
static size_t open16(struct bb *b)
{
    put16(b, 0);
    return b->n;
}

static void close16(struct bb *b, size_t at)
{
    size_t len = b->n - at;
    b->b[at - 2] = (uint8_t)(len >> 8);
    b->b[at - 1] = (uint8_t)len;
}

/* Handshake message `type` with `body`, in records of `type` (RFC 8446 §5.1). */
static void records(struct bb *out, uint8_t ctype, const uint8_t *p, size_t n)
{
    do {
        size_t k = n > 16384 ? 16384 : n;
        put8(out, ctype);
        put16(out, 0x0303);
        put16(out, (unsigned)k);
        putn(out, p, k);
        p += k;
        n -= k;
    } while (n);
}

static void handshake(struct bb *out, uint8_t type, const struct bb *body)
{
    static struct bb m;
    m.n = 0;
    put8(&m, type);
    put24(&m, (unsigned)body->n);
    putn(&m, body->b, body->n);
    records(out, 22, m.b, m.n);
}

/* Hex digits, spaces ignored. */
static void puthex(struct bb *b, const char *hex)
{
    int hi = -1;
    for (; *hex; hex++) {
        if (*hex == ' ')
            continue;
        if (hi < 0) {
            hi = hexval(*hex);
        } else {
            put8(b, (unsigned)(hi << 4 | hexval(*hex)));
            hi = -1;
        }
    }
}

static void ext(struct bb *b, unsigned type, const char *hex)
{
    put16(b, type);
    size_t at = open16(b);
    puthex(b, hex);
    close16(b, at);
}

/* The ClientHello of the JA4 specification's example (technical_details/JA4.md:
 * 15 ciphers, 16 extensions, ALPN h2, 8 signature algorithms), with GREASE
 * added in ciphers, extensions, versions and groups, which JA4 ignores.
 * `sigalgs` false sends an empty signature_algorithms list; `alpn` replaces
 * the extension's body when not NULL. */
static void spec_hello(struct bb *body, bool sigalgs, const char *alpn)
{
    static const unsigned ciphers[] = { 0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030,
                                        0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035 };
    body->n = 0;
    put16(body, 0x0303);
    fill(body, 0x11, 32);
    put8(body, 32);
    fill(body, 0x22, 32);
    put16(body, 2 * N(ciphers));
    for (size_t i = 0; i < N(ciphers); i++)
        put16(body, ciphers[i]);
    put8(body, 1);
    put8(body, 0);
    size_t at = open16(body);
    ext(body, 0x1a1a, "");
    ext(body, 0x001b, "020002");
    ext(body, 0x0000, "000e00000b6578616d706c652e636f6d"); /* example.com */
    ext(body, 0x0033, "0000");
    ext(body, 0x0010, alpn ? alpn : "000c02683208687474702f312e31"); /* h2, http/1.1 */
    ext(body, 0x4469, "00030268 32");
    ext(body, 0x0017, "");
    ext(body, 0x002d, "0101");
    ext(body, 0x000d, sigalgs ? "001004030804040105030805050108060601" : "0000");
    ext(body, 0x0005, "0100000000");
    ext(body, 0x0023, "");
    ext(body, 0x0012, "");
    ext(body, 0x002b, "063a3a03040303");
    ext(body, 0xff01, "00");
    ext(body, 0x000b, "0100");
    ext(body, 0x000a, "00084a4a001d00170018");
    ext(body, 0x0015, "00000000");
    ext(body, 0x2a2a, "00");
    close16(body, at);
}

/* A TLS 1.2 ServerHello: version, cipher, no extensions (RFC 5246 §7.4.1.3). */
static void plain_server_hello(struct bb *body, unsigned version, unsigned cipher)
{
    body->n = 0;
    put16(body, version);
    fill(body, 0x33, 32);
    put8(body, 0);
    put16(body, cipher);
    put8(body, 0);
}

/* ---- Real handshakes ---- */

START_TEST(lab_pop3s_tls13)
{
    struct mx_turn *t = load(pop3s_995, N(pop3s_995));
    char *out = run(t, N(pop3s_995), &pop3s);
    ck_assert_int_eq(mx_harness_count(out, "tls"), 1);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    T("how", "implicit");
    /* tls.handshake.extensions.supported_version: 0x0304,0x0303,0x0302,0x0301 */
    ck_assert_uint_eq(tls_len(out, "versions_offered"), 4);
    T("versions_offered.0", "TLS 1.3");
    T("versions_offered.3", "TLS 1.0");
    T("version", "TLS 1.3");
    T("sni", "mx.lab.test");
    ck_assert_uint_eq(tls_len(out, "alpn_offered"), 0);
    T("alpn", "null");
    /* 31 tls.handshake.ciphersuite values, 0x1302 first, 0x00ff last */
    ck_assert_uint_eq(tls_len(out, "ciphers_offered"), 31);
    T("ciphers_offered.0", "TLS_AES_256_GCM_SHA384");
    T("ciphers_offered.3", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
    T("ciphers_offered.30", "TLS_EMPTY_RENEGOTIATION_INFO_SCSV");
    T("cipher", "TLS_AES_256_GCM_SHA384");
    T("completed", "true");
    ck_assert_uint_eq(tls_len(out, "alerts"), 0);
    T("certificate_hidden", "TLS 1.3 encrypts the certificate");
    T("certificate", "(absent)");
    T("ja3", "d39e1be3241d516b1f714bd47c2bc968");
    T("ja3_string", "771,4866-4867-4865-49196-49200-159-52393-52392-52394-49195-49199-158-49188-49192-107-49187-49191-"
                    "103-49162-49172-57-49161-49171-51-157-156-61-60-53-47-255,0-11-10-35-22-23-13-43-45-51-21,29-23-"
                    "30-25-24-256-257-258-259-260,0-1-2");
    T("ja3s", "15af977ce25de452b96affa2addb1036");
    T("ja4", "t13d311100_e8f1e7e78f70_d41ae481755e");
    /* Records after the client's Finished: 29+31+23+25+23 from the client;
     * the server's two session tickets (266+266) and its replies. */
    T("app_bytes.c2s", "131");
    T("app_bytes.s2c", "5495");
    expect(out, "flow_start", 0, "proto", "pop3");
    free(out);
    SPLIT_OK(t, N(pop3s_995), &pop3s);
    free_turns(t, N(pop3s_995));
}
END_TEST

START_TEST(tls12_chain_sni_alpn)
{
    struct mx_turn *t = load(tls12_chain, N(tls12_chain));
    char *out = run(t, N(tls12_chain), &imaps);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    T("versions_offered.0", "TLS 1.2");
    ck_assert_uint_eq(tls_len(out, "versions_offered"), 1);
    T("version", "TLS 1.2");
    T("sni", "imap.example.test");
    T("alpn_offered.0", "imap");
    T("alpn", "imap");
    ck_assert_uint_eq(tls_len(out, "ciphers_offered"), 28);
    T("cipher", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
    T("completed", "true");
    /* openssl x509 -nameopt RFC2253 -subject -issuer -dates; sha256sum of the DER */
    T("certificate.subject", "CN=imap.example.test,O=mxray test");
    T("certificate.issuer", "CN=mxray Test CA,O=mxray test,C=DE");
    T("certificate.not_before", "2026-11-27T10:57:56Z");
    T("certificate.not_after", "2029-03-01T10:57:56Z");
    T("certificate.self_signed", "false");
    T("certificate.sha256", "29b9573bda550308f02ad3e6a272d268d84540bc56b41f96952223aaaaaa8948");
    T("certificate.chain_length", "2");
    T("certificate_hidden", "(absent)");
    T("ja3", "22558766122974704364c9c75c5cce0a");
    T("ja3_string", "771,49196-49200-159-52393-52392-52394-49195-49199-158-49188-49192-107-49187-49191-103-49162-49172-"
                    "57-49161-49171-51-157-156-61-60-53-47-255,0-11-10-35-16-22-23-13,29-23-30-25-24,0-1-2");
    T("ja3s", "e195432758194ce2d482396b82e0d48e");
    T("ja4", "t12d2808ip_d943125447b4_e7e480e5a997");
    /* One application_data record each way (38 and 37 bytes with headers);
     * the server's close_notify is an encrypted alert, not application data. */
    T("app_bytes.c2s", "33");
    T("app_bytes.s2c", "32");
    ck_assert_uint_eq(tls_len(out, "alerts"), 0);
    free(out);
    SPLIT_OK(t, N(tls12_chain), &imaps);
    free_turns(t, N(tls12_chain));
}
END_TEST

START_TEST(tls12_self_signed_refused)
{
    struct mx_turn *t = load(tls12_selfsigned, N(tls12_selfsigned));
    char *out = run(t, N(tls12_selfsigned), &pop3s);
    T("sni", "pop.selfsigned.test");
    T("version", "TLS 1.2");
    T("completed", "false");
    T("alerts.0.dir", "c2s");
    T("alerts.0.level", "fatal");
    T("alerts.0.description", "unknown_ca");
    ck_assert_uint_eq(tls_len(out, "alerts"), 1);
    T("certificate.subject", "CN=pop.selfsigned.test");
    T("certificate.issuer", "CN=pop.selfsigned.test");
    T("certificate.self_signed", "true");
    T("certificate.chain_length", "1");
    T("certificate.sha256", "3ab48e24d3a54ab03cda9d2b9410db0336503a43758ab007edbdc5cab3b8022a");
    T("ja3", "871a754af286dfb70c1b53c6887c62e0");
    T("ja3s", "abade5a4a7f42baf54766e5d108283b6");
    T("ja4", "t12d280700_d943125447b4_e7e480e5a997");
    T("app_bytes.c2s", "0");
    T("app_bytes.s2c", "0");
    free(out);
    SPLIT_OK(t, N(tls12_selfsigned), &pop3s);
    free_turns(t, N(tls12_selfsigned));
}
END_TEST

START_TEST(tls13_hello_retry)
{
    struct mx_turn *t = load(tls13_hrr, N(tls13_hrr));
    char *out = run(t, N(tls13_hrr), &smtps);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    T("versions_offered.0", "TLS 1.3");
    T("version", "TLS 1.3");
    T("sni", "smtp.example.test");
    T("cipher", "TLS_AES_256_GCM_SHA384");
    T("completed", "true");
    T("certificate_hidden", "TLS 1.3 encrypts the certificate");
    /* The first ClientHello's fingerprint (the second one, after the
     * HelloRetryRequest, has the same in tshark). */
    T("ja3", "c957e1b78599f9337a29ea53e8c1625d");
    T("ja3s", "15af977ce25de452b96affa2addb1036");
    T("ja4", "t13d041000_16476d049b0b_78f1d400d464");
    /* The client's compatibility ChangeCipherSpec after the HelloRetryRequest
     * does not make its second ClientHello "encrypted"; application records
     * after the client's Finished (69): 26 from the client, two tickets
     * (250+250), the reply (25) and the close_notify (19) from the server. */
    T("app_bytes.c2s", "26");
    T("app_bytes.s2c", "544");
    free(out);
    SPLIT_OK(t, N(tls13_hrr), &smtps);
    free_turns(t, N(tls13_hrr));
}
END_TEST

/* JA4 against the example of its specification (FoxIO, technical_details/JA4.md). */
START_TEST(ja4_specification_example)
{
    static struct bb body, rec;
    spec_hello(&body, true, NULL);
    rec.n = 0;
    handshake(&rec, 1, &body);
    struct mx_turn t[] = { { C, (const char *)rec.b, rec.n } };
    char *out = run(t, N(t), &imaps);
    T("ja4", "t13d1516h2_8daaf6152771_e5627efa2ab1");
    T("ja3_string", "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,27-0-51-16-17513-"
                    "23-45-13-5-35-18-43-65281-11-10-21,29-23-24,0");
    T("ja3", "c000e2caf3a25423f9de6c8a4b12a975");
    T("versions_offered.0", "TLS 1.3");
    T("versions_offered.1", "TLS 1.2");
    ck_assert_uint_eq(tls_len(out, "versions_offered"), 2); /* GREASE left out */
    ck_assert_uint_eq(tls_len(out, "ciphers_offered"), 15);
    T("ciphers_offered.0", "TLS_AES_128_GCM_SHA256");
    T("alpn_offered.0", "h2");
    T("alpn_offered.1", "http/1.1");
    T("sni", "example.com");
    T("version", "null");
    T("completed", "false");
    T("certificate", "null");
    T("ja3s", "null");
    free(out);
    SPLIT_OK(t, N(t), &imaps);

    /* "If there are no signature algorithms in the hello packet, then the
     * string ends without an underscore": 6d807ffa2a79. */
    spec_hello(&body, false, NULL);
    rec.n = 0;
    handshake(&rec, 1, &body);
    t[0].len = rec.n;
    out = run(t, N(t), &imaps);
    T("ja4", "t13d1516h2_8daaf6152771_6d807ffa2a79");
    free(out);

    /* An ALPN whose last byte is not alphanumeric: the first and last hex
     * digits of the value ("0x30 0xAB" is "3b"). */
    spec_hello(&body, true, "0003023 0ab");
    rec.n = 0;
    handshake(&rec, 1, &body);
    t[0].len = rec.n;
    out = run(t, N(t), &imaps);
    T("ja4", "t13d1516"
             "3b"
             "_8daaf6152771_e5627efa2ab1");
    free(out);
}
END_TEST

/* ---- Hostile and odd input ---- */

/* Plain text on an implicit-TLS port: the STARTTLS-abuse/misconfiguration audit. */
START_TEST(not_tls)
{
    static const struct mx_turn t[] = {
        { S, "220 mx.example.test ESMTP\r\n", 0 },
        { C, "EHLO client\r\n", 0 },
    };
    char *out = run(t, N(t), &smtps);
    ck_assert_int_eq(anomalies(out, "TLS_NOT_TLS"), 2);
    ck_assert_uint_eq(tls_len(out, "versions_offered"), 0);
    T("version", "null");
    T("sni", "null");
    T("completed", "false");
    T("certificate", "null");
    T("ja3", "null");
    T("ja4", "null");
    T("app_bytes.c2s", "0");
    free(out);
    SPLIT_OK(t, N(t), &smtps);
}
END_TEST

START_TEST(record_invalid)
{
    static struct bb c, s, body;
    spec_hello(&body, true, NULL);
    c.n = 0;
    handshake(&c, 1, &body);
    puthex(&c, "99 0303 0001 00"); /* content type 0x99 (RFC 8446 §5.1) */
    plain_server_hello(&body, 0x0303, 0xc02f);
    s.n = 0;
    handshake(&s, 2, &body);
    puthex(&s, "17 0303 4801"); /* 18433 > 2^14 + 2048 (RFC 5246 §6.2.3) */
    fill(&s, 0, 64);
    struct mx_turn t[] = { { C, (const char *)c.b, c.n }, { S, (const char *)s.b, s.n } };
    char *out = run(t, N(t), &imaps);
    ck_assert_int_eq(anomalies(out, "TLS_RECORD_INVALID"), 2);
    expect(out, "anomaly", 0, "dir", "c2s");
    expect(out, "anomaly", 1, "dir", "s2c");
    T("ja4", "t13d1516h2_8daaf6152771_e5627efa2ab1");
    T("version", "TLS 1.2");
    T("cipher", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
    T("ja3s", "174e7e4992a63f6d419626d97363adb8"); /* MD5 of "771,49199,": the hello was whole before the bad record */
    free(out);
    SPLIT_OK(t, N(t), &imaps);
}
END_TEST

/* A handshake message beyond the 64 KiB cap is skipped, never buffered; one
 * just under it is reassembled across records. */
START_TEST(handshake_caps)
{
    static struct bb c, s, body, msg;
    spec_hello(&body, true, NULL);
    c.n = 0;
    handshake(&c, 1, &body);
    plain_server_hello(&body, 0x0303, 0xc02f);
    s.n = 0;
    handshake(&s, 2, &body);
    /* Certificate declaring 1 MiB: two full records of it, then the end. */
    msg.n = 0;
    puthex(&msg, "0b 100000");
    fill(&msg, 0x41, 2 * 16384 - 4);
    records(&s, 22, msg.b, msg.n);
    struct mx_turn t[] = { { C, (const char *)c.b, c.n }, { S, (const char *)s.b, s.n } };
    char *out = run(t, N(t), &imaps);
    ck_assert_int_eq(anomalies(out, "TLS_HANDSHAKE_TOO_LONG"), 1);
    ck_assert_int_eq(anomalies(out, "TLS_TRUNCATED"), 0); /* the records themselves were whole */
    T("certificate", "null");
    T("cipher", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
    char *every = mx_harness_run(t, N(t), &imaps, SIZE_MAX, true);
    char *a = mx_harness_normalize(out), *b = mx_harness_normalize(every);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    free(every);
    free(out);

    /* 60000 bytes of certificate in four records: read whole, not DER. */
    s.n = 0;
    handshake(&s, 2, &body);
    body.n = 0;
    put24(&body, 60000 - 3);
    put24(&body, 60000 - 6);
    fill(&body, 0x30, 60000 - 6);
    handshake(&s, 11, &body);
    t[1].len = s.n;
    out = run(t, N(t), &imaps);
    ck_assert_int_eq(anomalies(out, "TLS_HANDSHAKE_TOO_LONG"), 0);
    ck_assert_int_eq(anomalies(out, "TLS_CERTIFICATE_INVALID"), 1);
    T("certificate.chain_length", "1");
    T("certificate.subject", "null");
    free(out);
}
END_TEST

START_TEST(truncated_record)
{
    static struct bb c, body;
    spec_hello(&body, true, NULL);
    c.n = 0;
    handshake(&c, 1, &body);
    struct mx_turn t[] = { { C, (const char *)c.b, c.n / 2 } };
    char *out = run(t, N(t), &imaps);
    ck_assert_int_eq(anomalies(out, "TLS_TRUNCATED"), 1);
    ck_assert_uint_eq(tls_len(out, "versions_offered"), 0);
    T("ja3", "null");
    free(out);
    SPLIT_OK(t, N(t), &imaps);
    /* A header cut after 3 bytes is truncated too. */
    t[0].len = 3;
    out = run(t, N(t), &imaps);
    ck_assert_int_eq(anomalies(out, "TLS_TRUNCATED"), 1);
    free(out);
}
END_TEST

/* A ClientHello whose inner lengths lie, in each place a length is. */
static void lying_hello(struct bb *body, int how)
{
    body->n = 0;
    put16(body, 0x0303);
    fill(body, 0x11, 32);
    put8(body, how == 0 ? 33 : 0); /* a session id longer than 32 */
    if (how == 1) {
        puthex(body, "0003 1301 13"); /* an odd cipher list */
    } else {
        puthex(body, "0004 1301 1302");
    }
    puthex(body, "01 00");
    if (how == 2) {
        puthex(body, "0100 0000 0004 0002 6162"); /* the extensions run past the message */
        return;
    }
    size_t at = open16(body);
    if (how == 3)
        ext(body, 0x0000, "00ff 00 000b 6578616d706c652e636f6d"); /* SNI list longer than its extension */
    else if (how == 4)
        ext(body, 0x0010, "0005 08 6832"); /* an ALPN name longer than its list */
    else if (how == 5)
        ext(body, 0x002b, "05 0304 0303"); /* supported_versions list of odd length, past its end */
    else
        ext(body, 0x000a, "0004 001d 0017 00"); /* a byte after the groups list */
    close16(body, at);
}

START_TEST(hello_lies)
{
    static struct bb c, body;
    for (int how = 0; how <= 6; how++) {
        lying_hello(&body, how);
        c.n = 0;
        handshake(&c, 1, &body);
        struct mx_turn t[] = { { C, (const char *)c.b, c.n } };
        char *out = run(t, N(t), &imaps);
        ck_assert_msg(anomalies(out, "TLS_HELLO_INVALID") == 1, "variant %d", how);
        T("ja3", "null");
        T("ja3_string", "null");
        T("ja4", "null");
        free(out);
        SPLIT_OK(t, N(t), &imaps);
    }
    /* The handshake header says 40 bytes; the hello goes on past it, and what
     * follows is read as more handshake messages. */
    spec_hello(&body, true, NULL);
    c.n = 0;
    handshake(&c, 1, &body);
    c.b[6] = 0, c.b[7] = 0, c.b[8] = 40;
    struct mx_turn t[] = { { C, (const char *)c.b, c.n } };
    char *out = run(t, N(t), &imaps);
    ck_assert_int_eq(anomalies(out, "TLS_HELLO_INVALID"), 1);
    free(out);
    SPLIT_OK(t, N(t), &imaps);
}
END_TEST

/* More values than the caps keep (512 ciphers, 32 point formats): counted
 * out, never an endless loop (a regression found by fuzz_tls: the capped
 * list stopped reading its cursor). */
START_TEST(hello_limits)
{
    static struct bb c, body;
    for (int which = 0; which < 2; which++) {
        body.n = 0;
        put16(&body, 0x0303);
        fill(&body, 0x11, 32);
        put8(&body, 0);
        size_t n = which == 0 ? 600 : 2;
        put16(&body, (unsigned)(2 * n));
        for (size_t i = 0; i < n; i++)
            put16(&body, 0x0100 + (unsigned)i);
        puthex(&body, "01 00");
        size_t at = open16(&body);
        put16(&body, 0x000b);
        size_t e = open16(&body);
        put8(&body, which == 1 ? 40 : 1);
        fill(&body, 0, which == 1 ? 40 : 1);
        close16(&body, e);
        close16(&body, at);
        c.n = 0;
        handshake(&c, 1, &body);
        struct mx_turn t[] = { { C, (const char *)c.b, c.n } };
        char *out = run(t, N(t), &imaps);
        ck_assert_int_eq(anomalies(out, "TLS_HELLO_LIMIT"), 1);
        ck_assert_int_eq(anomalies(out, "TLS_HELLO_INVALID"), 0);
        ck_assert_uint_eq(tls_len(out, "ciphers_offered"), which == 0 ? 512 : 2);
        T("ja3", "null");
        T("ja4", "null");
        free(out);
    }
}
END_TEST

START_TEST(heartbeat_and_interleaving)
{
    static struct bb c, body, msg;
    spec_hello(&body, true, NULL);
    msg.n = 0;
    put8(&msg, 1);
    put24(&msg, (unsigned)body.n);
    putn(&msg, body.b, body.n);
    c.n = 0;
    records(&c, 22, msg.b, 100);               /* the first 100 bytes of the hello */
    puthex(&c, "15 0303 0002 0100");           /* a warning close_notify in between */
    records(&c, 22, msg.b + 100, msg.n - 100); /* the rest */
    puthex(&c, "18 0303 0003 01 4000");        /* a heartbeat request claiming 16 KiB (Heartbleed) */
    struct mx_turn t[] = { { C, (const char *)c.b, c.n } };
    char *out = run(t, N(t), &imaps);
    /* The alert cuts the hello; the rest of it, read as a message, is cut by the heartbeat. */
    ck_assert_int_eq(anomalies(out, "TLS_HANDSHAKE_INVALID"), 2);
    ck_assert_int_eq(anomalies(out, "TLS_HEARTBEAT"), 1);
    T("alerts.0.level", "warning");
    T("alerts.0.description", "close_notify");
    T("alerts.0.dir", "c2s");
    T("ja3", "null");
    free(out);
    SPLIT_OK(t, N(t), &imaps);
}
END_TEST

/* An SSL 2.0 CLIENT-HELLO offering TLS 1.0 (RFC 5246 appendix E.2), answered in TLS 1.0. */
START_TEST(sslv2_client_hello)
{
    static struct bb c, s, body;
    c.n = 0;
    puthex(&c, "802e 01 0301 0015 0000 0010"
               "010080 0700c0 030080 000039 000035 0000ff 020080"
               "00112233445566778899aabbccddeeff");
    plain_server_hello(&body, 0x0301, 0x0035);
    s.n = 0;
    handshake(&s, 2, &body);
    struct mx_turn t[] = { { C, (const char *)c.b, c.n }, { S, (const char *)s.b, s.n } };
    char *out = run(t, N(t), &smtps);
    ck_assert_int_eq(anomalies(out, "SSLV2_CLIENT_HELLO"), 1);
    ck_assert_int_eq(anomalies(out, "TLS_HELLO_INVALID"), 0);
    T("versions_offered.0", "TLS 1.0");
    ck_assert_uint_eq(tls_len(out, "ciphers_offered"), 7);
    T("ciphers_offered.0", "SSL_CK_RC4_128_WITH_MD5");
    T("ciphers_offered.1", "SSL_CK_DES_192_EDE3_CBC_WITH_MD5");
    T("ciphers_offered.3", "TLS_DHE_RSA_WITH_AES_256_CBC_SHA");
    T("ciphers_offered.5", "TLS_EMPTY_RENEGOTIATION_INFO_SCSV");
    T("ciphers_offered.6", "SSL_CK_RC4_128_EXPORT40_WITH_MD5");
    T("ja3", "null");
    T("ja4", "null");
    T("version", "TLS 1.0");
    T("cipher", "TLS_RSA_WITH_AES_256_CBC_SHA");
    T("ja3s", "ab1e32eeaf70ee94c0af00f08d126891"); /* MD5 of "769,53," */
    free(out);
    SPLIT_OK(t, N(t), &smtps);
}
END_TEST

START_TEST(certificate_lies)
{
    static struct bb s, body, cert;
    plain_server_hello(&body, 0x0303, 0xc02f);
    s.n = 0;
    handshake(&s, 2, &body);
    cert.n = 0;
    puthex(&cert, "00000a 000007 67617262616765"); /* one "certificate": "garbage" */
    handshake(&s, 11, &cert);
    struct mx_turn t[] = { { S, (const char *)s.b, s.n } };
    char *out = run(t, N(t), &imaps);
    ck_assert_int_eq(anomalies(out, "TLS_CERTIFICATE_INVALID"), 1);
    T("certificate.subject", "null");
    T("certificate.self_signed", "null");
    T("certificate.sha256", "795b6904e54f82411df4b0e27a373a55eea3f9d66dac5a9bce1dd92f7b401da5");
    T("certificate.chain_length", "1");
    free(out);
    SPLIT_OK(t, N(t), &imaps);

    s.n = 0;
    handshake(&s, 2, &body);
    cert.n = 0;
    puthex(&cert, "00000a 000064 67617262616765"); /* an entry of 100 bytes in a list of 10 */
    handshake(&s, 11, &cert);
    t[0].len = s.n;
    out = run(t, N(t), &imaps);
    ck_assert_int_eq(anomalies(out, "TLS_HANDSHAKE_INVALID"), 1);
    T("certificate.chain_length", "0");
    T("certificate.sha256", "null");
    free(out);
    SPLIT_OK(t, N(t), &imaps);
}
END_TEST

/* Picked up midstream, the first bytes may be anywhere in a record: not an anomaly. */
START_TEST(midstream)
{
    static const struct mx_turn t[] = {
        { C, "\x17\x03\x03\x00\x05hello\x17\x03\x03\x00\x02hi", 17 },
        { S, "middle of some record", 0 },
    };
    char *out = run(t, N(t), &imaps_midstream);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    T("app_bytes.c2s", "7");
    T("app_bytes.s2c", "0");
    T("version", "null");
    T("completed", "false");
    free(out);
    SPLIT_OK(t, N(t), &imaps_midstream);
}
END_TEST

/* Every byte of the recorded dialogues flipped at random: the output stays
 * one valid JSON object per line. */
START_TEST(mutations)
{
    uint32_t x = 2463534242u;
    struct mx_turn *t = load(tls12_chain, N(tls12_chain));
    for (int round = 0; round < 300; round++) {
        struct mx_turn m[N(tls12_chain)];
        char *bufs[N(tls12_chain)];
        for (size_t i = 0; i < N(tls12_chain); i++) {
            bufs[i] = malloc(t[i].len);
            memcpy(bufs[i], t[i].data, t[i].len);
            m[i] = t[i];
            m[i].data = bufs[i];
        }
        for (int k = 0; k < 1 + round % 8; k++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            size_t i = x % N(tls12_chain);
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            bufs[i][x % m[i].len] = (char)(x >> 24);
        }
        char *out = mx_harness_run(m, N(m), &imaps, SIZE_MAX, false);
        ck_assert(mx_harness_all_json(out));
        ck_assert_int_eq(mx_harness_count(out, "tls"), 1);
        free(out);
        for (size_t i = 0; i < N(tls12_chain); i++)
            free(bufs[i]);
    }
    free_turns(t, N(tls12_chain));
}
END_TEST

/* ---- The engine driven by hand: lost segments, and the STARTTLS API ---- */

struct drv {
    struct mx_engine *eng;
    struct mx_sink *sink;
    FILE *fp;
    char *out;
    size_t len;
    uint32_t seq[2];
    mx_time_t t;
    uint16_t port;
};

static void drv_pkt(struct drv *d, enum mx_dir dir, uint8_t flags, const void *p, size_t n)
{
    static uint8_t f[70000];
    bool c2s = dir == C;
    size_t len = mx_harness_tcp_frame(f, c2s ? 1 : 2, c2s ? 40000 : d->port, c2s ? 2 : 1, c2s ? d->port : 40000,
                                      d->seq[dir], d->seq[!dir], flags, p, n);
    struct mx_raw_packet raw = {
        .frame = 0, .ts = d->t, .linktype = 1, .caplen = (uint32_t)len, .wirelen = (uint32_t)len, .data = f
    };
    d->t += MX_NS_PER_SEC / 1000;
    mx_engine_packet(d->eng, &raw);
    d->seq[dir] += (uint32_t)n + ((flags & (MX_TCP_SYN | MX_TCP_FIN)) ? 1 : 0);
}

static void drv_open(struct drv *d, uint16_t port, const struct mx_dissector *dis)
{
    memset(d, 0, sizeof(*d));
    d->fp = open_memstream(&d->out, &d->len);
    d->sink = mx_sink_new();
    ck_assert(mx_report_json_add(d->sink, d->fp, false));
    struct mx_config cfg;
    mx_config_defaults(&cfg);
    cfg.protocols = dis ? mx_harness_protocols_with(dis) : mx_harness_protocols();
    cfg.warnings = false;
    cfg.classify = false;
    char err[128];
    d->eng = mx_engine_new(&cfg, d->sink, err, sizeof(err));
    ck_assert_ptr_nonnull(d->eng);
    d->seq[C] = 1000;
    d->seq[S] = 5000;
    d->t = (mx_time_t)1700000000 * MX_NS_PER_SEC;
    d->port = port;
    drv_pkt(d, C, MX_TCP_SYN, NULL, 0);
    d->seq[C]--;
    drv_pkt(d, S, MX_TCP_SYN | MX_TCP_ACK, NULL, 0);
    d->seq[C]++;
    drv_pkt(d, C, MX_TCP_ACK, NULL, 0);
}

/* Sends bytes as segments of at most 1400 bytes. */
static void drv_send(struct drv *d, enum mx_dir dir, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        size_t k = n > 1400 ? 1400 : n;
        drv_pkt(d, dir, MX_TCP_ACK | MX_TCP_PSH, b, k);
        b += k;
        n -= k;
    }
}

/* n bytes the capture never saw. */
static void drv_lose(struct drv *d, enum mx_dir dir, size_t n)
{
    d->seq[dir] += (uint32_t)n;
}

static char *drv_close(struct drv *d)
{
    drv_pkt(d, C, MX_TCP_ACK | MX_TCP_FIN, NULL, 0);
    drv_pkt(d, S, MX_TCP_ACK | MX_TCP_FIN, NULL, 0);
    drv_pkt(d, C, MX_TCP_ACK, NULL, 0);
    mx_engine_finish(d->eng);
    mx_sink_finish(d->sink);
    mx_engine_free(d->eng);
    mx_sink_free(d->sink);
    fclose(d->fp);
    ck_assert(mx_harness_all_json(d->out));
    return d->out;
}

/* A TLS 1.2 handshake, then application data of which some is lost. */
START_TEST(gaps)
{
    static struct bb c, s, body, app;
    spec_hello(&body, true, NULL);
    c.n = 0;
    handshake(&c, 1, &body);
    plain_server_hello(&body, 0x0303, 0xc02f);
    s.n = 0;
    handshake(&s, 2, &body);
    puthex(&s, "14 0303 0001 01  16 0303 0004 deadbeef"); /* ChangeCipherSpec, Finished */
    app.n = 0;
    puthex(&app, "14 0303 0001 01  16 0303 0004 deadbeef");
    puthex(&app, "17 0303 0064"); /* 100 bytes of application data */
    fill(&app, 0x55, 100);
    struct drv d;
    drv_open(&d, 993, NULL);
    drv_send(&d, C, c.b, c.n);
    drv_send(&d, S, s.b, s.n);
    drv_send(&d, C, app.b, app.n - 60); /* the record's first 40 bytes */
    drv_lose(&d, C, 30);                /* 30 lost */
    drv_send(&d, C, app.b + app.n - 30, 30);
    drv_send(&d, C,
             "\x17\x03\x03\x00\x0a"
             "0123456789",
             15);
    drv_lose(&d, S, 20); /* lost between records: the framing is gone */
    drv_send(&d, S,
             "\x17\x03\x03\x00\x03"
             "abc",
             8);
    char *out = drv_close(&d);
    ck_assert_int_eq(mx_harness_count(out, "gap"), 2);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    T("completed", "true");
    T("app_bytes.c2s", "80"); /* 40 + 30 of the first record, 10 of the second */
    T("app_bytes.s2c", "0");
    free(out);
}
END_TEST

/* How a mail dissector uses the API after STARTTLS: a line in clear each way,
 * then TLS; the stream offsets do not start at 0. */
struct fake {
    struct mx_tls *t;
    bool tls[2], end[2];
};

static void *fake_new(struct mx_dissect_ctx *ctx)
{
    struct fake *f = calloc(1, sizeof(*f));
    if (f)
        f->t = mx_tls_new(ctx, "starttls");
    if (f && !f->t) {
        free(f);
        f = NULL;
    }
    return f;
}

static void fake_free(void *p)
{
    struct fake *f = p;
    mx_tls_free(f->t);
    free(f);
}

static struct mx_parse_result fake_parse(void *p, struct mx_dissect_ctx *ctx, enum mx_dir d, struct mx_slice data,
                                         unsigned flags)
{
    struct fake *f = p;
    struct mx_parse_result r = { .status = MX_PARSE_OK, .consumed = data.len, .needed = 0 };
    if (flags & MX_CHUNK_GAP) {
        if (f->tls[d])
            mx_tls_gap(f->t, d, data.len);
        return r;
    }
    size_t skip = 0;
    if (!f->tls[d] && data.len) {
        const uint8_t *lf = memchr(data.ptr, '\n', data.len);
        if (!lf && !(flags & MX_CHUNK_END)) {
            r.consumed = 0;
            return r;
        }
        skip = lf ? (size_t)(lf - data.ptr) + 1 : data.len;
        f->tls[d] = lf != NULL;
    }
    if (f->tls[d] && data.len > skip)
        mx_tls_feed(f->t, d, mx_slice_make(data.ptr + skip, data.len - skip), mx_ctx_offset(ctx, d) + skip);
    if (flags & MX_CHUNK_END) {
        f->end[d] = true;
        if (f->end[mx_dir_other(d)]) {
            mx_tls_end(f->t);
            mx_tls_end(f->t); /* only the first call emits */
            struct mx_event *ev = mx_event_begin(mx_ctx_sink(ctx), "test.session", mx_ctx_flow_id(ctx), MX_TIME_NONE);
            mx_tls_describe(f->t, ev, "tls");
            mx_ev_uint(ev, "c2s", mx_tls_app_bytes(f->t, MX_DIR_C2S));
            mx_ev_uint(ev, "s2c", mx_tls_app_bytes(f->t, MX_DIR_S2C));
            mx_ev_bool(ev, "completed", mx_tls_completed(f->t));
            mx_event_emit(mx_ctx_sink(ctx), ev);
        }
    }
    return r;
}

static const struct mx_dissector fake_dissector = {
    .name = "fake",
    .state_new = fake_new,
    .state_free = fake_free,
    .parse = fake_parse,
    .anomalies = NULL,
    .n_anomalies = 0,
};

START_TEST(starttls_api)
{
    struct mx_turn *t = load(tls12_chain, N(tls12_chain));
    struct drv d;
    drv_open(&d, 143, &fake_dissector);
    drv_send(&d, C, "a1 STARTTLS\r\n", 13);
    drv_send(&d, S, "a1 OK Begin TLS negotiation now\r\n", 33);
    for (size_t i = 0; i < N(tls12_chain); i++)
        drv_send(&d, t[i].dir, t[i].data, t[i].len);
    char *out = drv_close(&d);
    ck_assert_int_eq(mx_harness_count(out, "tls"), 1);
    ck_assert_int_eq(mx_harness_count(out, "anomaly"), 0);
    T("how", "starttls");
    T("sni", "imap.example.test");
    T("ja3", "22558766122974704364c9c75c5cce0a");
    T("certificate.subject", "CN=imap.example.test,O=mxray test");
    T("frames.0", "6"); /* the ClientHello: after the 3-way handshake and the two lines */
    expect(out, "test.session", 0, "tls.version", "TLS 1.2");
    expect(out, "test.session", 0, "tls.sni", "imap.example.test");
    expect(out, "test.session", 0, "tls.cipher", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
    expect(out, "test.session", 0, "tls.completed", "true");
    expect(out, "test.session", 0, "completed", "true");
    expect(out, "test.session", 0, "c2s", "33");
    expect(out, "test.session", 0, "s2c", "32");
    free(out);

    /* Cleartext where the handshake should be: the injection audit. */
    drv_open(&d, 143, &fake_dissector);
    drv_send(&d, C, "a1 STARTTLS\r\na2 LOGIN alice secret\r\n", 36);
    drv_send(&d, S, "a1 OK Begin TLS negotiation now\r\n", 33);
    out = drv_close(&d);
    ck_assert_int_eq(anomalies(out, "TLS_NOT_TLS"), 1);
    expect(out, "anomaly", 0, "dir", "c2s");
    T("how", "starttls");
    expect(out, "test.session", 0, "tls.version", "null");
    expect(out, "test.session", 0, "tls.completed", "false");
    free(out);
    free_turns(t, N(tls12_chain));
}
END_TEST

static Suite *tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, lab_pop3s_tls13);
    tcase_add_test(tc, tls12_chain_sni_alpn);
    tcase_add_test(tc, tls12_self_signed_refused);
    tcase_add_test(tc, tls13_hello_retry);
    tcase_add_test(tc, ja4_specification_example);
    tcase_add_test(tc, not_tls);
    tcase_add_test(tc, record_invalid);
    tcase_add_test(tc, handshake_caps);
    tcase_add_test(tc, truncated_record);
    tcase_add_test(tc, hello_lies);
    tcase_add_test(tc, hello_limits);
    tcase_add_test(tc, heartbeat_and_interleaving);
    tcase_add_test(tc, sslv2_client_hello);
    tcase_add_test(tc, certificate_lies);
    tcase_add_test(tc, midstream);
    tcase_add_test(tc, mutations);
    tcase_add_test(tc, gaps);
    tcase_add_test(tc, starttls_api);
    suite_add_tcase(s, tc);
    return s;
}

MX_CHECK_MAIN(tls_suite)
