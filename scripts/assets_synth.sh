#!/usr/bin/env bash
# Real imagery for `vidcap synth`: photo cut-out sprites from Debian's
# tuxpaint-stamps-default and landscape panoramas from stellarium-data, fetched with
# `apt-get download` + `dpkg -x` (no root) into ${VIDCAP_CACHE:-$HOME/.cache/vidcap}/synth-assets.
# Writes catalogue.tsv (kind, category, name, file, license, description, options) and
# LICENSES.txt (both packages' copyright files). Idempotent: a finished catalogue of this
# script's version is left alone. Not run by `make test`; the procedural set needs nothing.
set -euo pipefail

VERSION=2
CACHE="${VIDCAP_CACHE:-$HOME/.cache/vidcap}"
DIR="$CACHE/synth-assets"
CATALOGUE="$DIR/catalogue.tsv"
PACKAGES=(tuxpaint-stamps-default stellarium-data)

if [ -f "$CATALOGUE" ] && head -1 "$CATALOGUE" | grep -qx "# vidcap synth assets v$VERSION"; then
    echo "synth assets: $CATALOGUE is up to date"
    exit 0
fi
command -v apt-get >/dev/null || { echo "assets_synth: apt-get not found (Debian/Ubuntu needed)" >&2; exit 1; }
command -v dpkg >/dev/null || { echo "assets_synth: dpkg not found" >&2; exit 1; }

# Unpacked fresh whenever the catalogue is (re)built; pruned to the picked files at the end.
rm -rf "$DIR/x"
mkdir -p "$DIR/debs" "$DIR/x"
for pkg in "${PACKAGES[@]}"; do
    if ! ls "$DIR/debs/${pkg}"_*.deb >/dev/null 2>&1; then
        echo "synth assets: downloading $pkg"
        (cd "$DIR/debs" && apt-get download "$pkg") || {
            echo "assets_synth: 'apt-get download $pkg' failed (run 'apt-get update' as root?)" >&2
            exit 1
        }
    fi
    dpkg -x "$(ls "$DIR"/debs/"${pkg}"_*.deb | tail -1)" "$DIR/x/$pkg"
done

version_of() { basename "$(ls "$DIR"/debs/"$1"_*.deb | tail -1)" .deb | cut -d_ -f2; }
TUX_VER=$(version_of tuxpaint-stamps-default)
STEL_VER=$(version_of stellarium-data)
STAMPS="x/tuxpaint-stamps-default/usr/share/tuxpaint/stamps"
LANDS="x/stellarium-data/usr/share/stellarium/landscapes"
TUX_LICENSE="GPL-2 (Debian tuxpaint-stamps-default $TUX_VER; (c) Bill Kendrick et al.)"

# Object categories: caption noun, then stamps (relative to the stamps directory). Chosen so
# each category has several instances and the noun is true of every one of them.
SPRITES='
bird|animals/birds/blackbird animals/birds/crow animals/birds/cuckoo animals/birds/lark animals/birds/magpie animals/birds/pigeon animals/birds/adelaide-rosella animals/birds/seagull animals/birds/rainbow-lorikeet
duck|animals/birds/duck animals/birds/drake
penguin|animals/birds/penguin animals/birds/little-penguin animals/birds/magellanic_penguin
chicken|animals/birds/hen animals/birds/chicken_profile animals/birds/rooster
fish|animals/fish/bluegroper animals/fish/butterflyfish animals/fish/clownfish animals/fish/coraltrout animals/fish/dolphinfish animals/fish/lionfish animals/fish/moonwrasse animals/fish/stripedfish
insect|animals/insects/bee animals/insects/fly animals/insects/grasshopper animals/insects/hornet animals/insects/hoverfly animals/insects/mantis
butterfly|animals/insects/cartoon/butterfly seasonal/easter/butterfly
ladybug|animals/insects/cartoon/ladybug animals/insects/cartoon/ladybug-2
snail|animals/insects/cartoon/snail animals/insects/cartoon/snail2
spider|seasonal/halloween/spider animals/insects/cartoon/spider_fly animals/insects/cartoon/spider_football
frog|animals/amphibians/frog animals/amphibians/frog-1
cow|animals/mammals/bovines/cow animals/mammals/bovines/cow_white animals/mammals/bovines/bull animals/mammals/bovines/zebu animals/mammals/bovines/yak animals/mammals/bovines/bison
sheep|animals/mammals/bovines/sheep animals/mammals/bovines/sheep_lamb animals/mammals/bovines/ram
goat|animals/mammals/bovines/goat animals/mammals/bovines/mountaingoat
antelope|animals/mammals/bovines/gnu-stand animals/mammals/bovines/gnu-baby-stand animals/mammals/bovines/indian_blackbuck
camel|animals/mammals/camel/camel animals/mammals/camel/dromedary
lion|animals/mammals/cats/lion animals/mammals/cats/lion-2 animals/mammals/cats/cartoon/lion
tiger|animals/mammals/cats/tiger animals/mammals/cats/tiger_sumatran
deer|animals/mammals/deer/caribou animals/mammals/deer/deer animals/mammals/deer/doe animals/mammals/deer/wapiti
dog|animals/mammals/dogs/dog animals/mammals/dogs/dingo
donkey|animals/mammals/equines/donkey animals/mammals/equines/donkey_eating
rodent|animals/mammals/rodents/beaver animals/mammals/rodents/capybara animals/mammals/rodents/marmot animals/mammals/rodents/squirrel animals/mammals/rodents/mouse animals/mammals/rodents/rat
rabbit|animals/mammals/rodents/rabbit animals/mammals/rodents/rabbit-2 animals/mammals/rabbit_little seasonal/easter/bunny
ape|animals/mammals/apes/chimp animals/mammals/apes/gorilla
whale|animals/mammals/aquatic/whale animals/mammals/aquatic/orca
bear|animals/mammals/bears/bear animals/mammals/bears/european-bear
teddy bear|animals/mammals/bears/cartoon/teddy_bear animals/mammals/bears/toys/edward_bear
pig|animals/mammals/pig animals/mammals/pig_golden animals/mammals/pig_golden2 animals/mammals/wildboar
apple|food/fruit/apple_fuji food/fruit/apple_granny_smith food/fruit/apple_green food/fruit/apple_red food/fruit/apple_sierra_beauty food/fruit/cartoon/apple
orange|food/fruit/orange food/fruit/orange_seville food/fruit/mandarine food/fruit/cartoon/orange
banana|food/fruit/banana food/fruit/cartoon/banana
lemon|food/fruit/lemon food/fruit/cartoon/lemon
strawberry|food/fruit/strawberry food/fruit/Strawberry2 food/fruit/cartoon/strawberry
pear|food/fruit/pear food/fruit/cartoon/pear
pineapple|food/fruit/pineapple food/fruit/cartoon/pineapple
raspberry|food/fruit/raspberry food/fruit/cartoon/raspberry
nut|food/nuts/almond food/nuts/pecan food/nuts/walnut food/nuts/walnut_shelled
pepper|food/vegetables/chilepepper food/vegetables/pepper food/vegetables/yellowpepper
lettuce|food/vegetables/lettuce food/vegetables/redlettuce plants/lettuce_bolted
mushroom|food/vegetables/mushroom plants/mushrooms/cep plants/mushrooms/cep-1 plants/mushrooms/cep-2
garlic bulb|food/vegetables/garlic food/vegetables/garlics
pumpkin|food/vegetables/pumpkin_small seasonal/halloween/jackolantern_mean
hat|clothes/hats/blue_fedora clothes/hats/green_fedora clothes/hats/feathered_hat clothes/hats/propeller_hat clothes/hats/sombrero clothes/hats/tophat seasonal/christmas/santahat seasonal/newyears/party-hat
shirt|clothes/t_poloshirt clothes/t_shirt clothes/t_tshirt
guitar|hobbies/music/string/guitar2 hobbies/music/string/guitar_classical hobbies/music/string/guitar_electric hobbies/music/string/guitar_electric_bass
drum|hobbies/music/percussion/drum_tomtom_floor hobbies/music/percussion/drumkit
wrench|household/tools/wrench household/tools/wrench_adjustable household/tools/wrench_plumbers
hammer|household/tools/hammer household/tools/mallet_metal
flower|plants/flowers/flower1 plants/flowers/flower2 plants/flowers/flower3 plants/flowers/flower4 plants/flowers/flower5 plants/flowers/flower6 plants/flowers/rose plants/flowers/daffodil plants/flowers/iris plants/flowers/marigold plants/flowers/anemone_red
tree|plants/trees/birch plants/trees/holm_oak plants/trees/tree336 plants/trees/liberia-palm seasonal/christmas/Christmas_Tree_photo
candle|seasonal/candle seasonal/hanukkah/holiday_candle
gravestone|seasonal/halloween/grave-a seasonal/halloween/grave-b seasonal/halloween/grave-c seasonal/halloween/grave-d seasonal/halloween/grave-e seasonal/halloween/grave-f
dreidel|seasonal/hanukkah/dreydl seasonal/hanukkah/dreydl-gimmel seasonal/hanukkah/dreydl-hay seasonal/hanukkah/dreydl-nun seasonal/hanukkah/dreydl-shin
ball|sports/basketball sports/cricketball sports/football sports/soccer sports/tennis_ball sports/cartoon/volleyball
coin|symbols/money/euro/coins/100 symbols/money/euro/coins/200 symbols/money/euro/coins/050 symbols/money/us/coins/025quarter symbols/money/us/coins/001penny symbols/money/canadian/coins/100loonie
chess piece|symbols/chess/w_1_king symbols/chess/w_2_queen symbols/chess/w_4_knight symbols/chess/b_1_king symbols/chess/b_5_rook symbols/chess/b_6_pawn
car|vehicles/auto/beetle vehicles/auto/sedan vehicles/auto/sportscar2 vehicles/emergency/sedan_police vehicles/race/indycar
truck|vehicles/auto/truck vehicles/emergency/firetruck vehicles/garbagetruck vehicles/construction/dumper
bus|vehicles/masstransit/cartoon/double_decker_bus vehicles/masstransit/green_korean_bus
boat|vehicles/ship/chineseJunk vehicles/ship/walnutBoat vehicles/ship/cartoon/tugboat
airplane|vehicles/flight/planes/747 vehicles/flight/planes/cartoon/plane military/vehicles/f22_raptor
train car|vehicles/locomotive/cartoon/boxcar vehicles/locomotive/cartoon/caboose vehicles/locomotive/cartoon/carriage vehicles/locomotive/cartoon/tanker vehicles/locomotive/cartoon/tender
house|town/houses/cartoon/cityhouse town/houses/cartoon/farm town/houses/cartoon/pinkhome town/houses/cartoon/swisshome town/houses/cartoon/inn
flag|town/flags/blue-and-yellowflag town/flags/checkeredflag town/flags/greenflag town/flags/redflag town/flags/whiteflag town/flags/yellowflag
road sign|town/roadsigns/crossroads town/roadsigns/dead_end_sign town/roadsigns/give_way_sign town/roadsigns/no_entry_sign town/roadsigns/school_sign town/roadsigns/stop town/roadsigns/yield
planet|space/planets/1_mercury space/planets/2_venus space/planets/3_earth space/planets/4_mars space/planets/5_jupiter space/planets/6_saturn space/planets/7_uranus space/planets/8_neptune
smiley face|symbols/faces/excited symbols/faces/happy symbols/faces/mad symbols/faces/sad
music note|symbols/music/note_012_a symbols/music/note_025_a symbols/music/note_050_a symbols/music/note_100
easter egg|seasonal/easter/wrapped_chocolate_easter_egg seasonal/easter/wrapped_chocolate_easter_egg_2
candy cane|seasonal/christmas/Candy_cane_photo_1 seasonal/christmas/Candy_cane_photo_2 seasonal/christmas/candy_cane
'

# Scenes: caption phrase | landscape | band TOP,BOTTOM | sky R,G,B | preposition.
BACKGROUNDS='
a grassy field|grossmugl|0.0,0.75|135,175,225|in
a meadow|guereins|0.0,1.0|135,175,225|in
a snowy forest|hurricane|0.0,0.9|150,185,230|in
a flower field|garching|0.0,1.0|135,175,225|in
the sea|ocean|0.0,1.0|140,180,230|over
the surface of mars|mars|0.40,0.66|205,170,135|on
the moon|moon|0.36,0.62|6,6,12|on
'

tmp="$CATALOGUE.tmp$$"
trap 'rm -f "$tmp"' EXIT
{
    echo "# vidcap synth assets v$VERSION"
    printf 'kind\tcategory\tname\tfile\tlicense\tdescription\toptions\n'
    while IFS='|' read -r category stamps; do
        [ -n "$category" ] || continue
        for stamp in $stamps; do
            png="$STAMPS/$stamp.png"
            if [ ! -f "$DIR/$png" ]; then
                echo "assets_synth: warning: $png missing, skipped" >&2
                continue
            fi
            desc="-"
            [ -f "$DIR/$STAMPS/$stamp.txt" ] && desc=$(head -1 "$DIR/$STAMPS/$stamp.txt" | tr -d '\r\t')
            name="$(basename "$stamp")"
            # Stamps of one name exist in several folders (photo and cartoon): keep names unique.
            case "$stamp" in */cartoon/*) name="$name-cartoon" ;; esac
            case "$stamp" in seasonal/*) name="$name-seasonal" ;; esac
            case "$stamp" in symbols/money/*) name="$(echo "$stamp" | cut -d/ -f3)-$name" ;; esac
            printf 'sprite\t%s\t%s\t%s\t%s\t%s\t-\n' "$category" "$name" "$png" "$TUX_LICENSE" "$desc"
        done
    done <<< "$SPRITES"
    while IFS='|' read -r scene land band sky prep; do
        [ -n "$scene" ] || continue
        ini="$DIR/$LANDS/$land/landscape.ini"
        [ -f "$ini" ] || { echo "assets_synth: $ini missing" >&2; exit 1; }
        # Panorama tiles in texN order (old_style), or the single spherical map.
        tiles=$({ grep -E '^tex[0-9]+ *=' "$ini" || true; } | sed -E 's/^tex([0-9]+) *= *(.*)$/\1 \2/' | sort -n | cut -d' ' -f2 | tr -d '\r')
        [ -n "$tiles" ] || tiles=$({ grep -E '^maptex *=' "$ini" || true; } | sed -E 's/^maptex *= *//' | tr -d '\r')
        files=$(for t in $tiles; do printf '%s+' "$LANDS/$land/$t"; done)
        author=$(grep -E '^author *=' "$ini" | sed -E 's/^author *= *//' | tr -d '\r')
        desc=$(grep -E '^name *=' "$ini" | sed -E 's/^name *= *//' | tr -d '\r')
        printf 'background\t%s\t%s\t%s\t%s\t%s\tprep=%s band=%s sky=%s\n' \
            "$scene" "$land" "${files%+}" \
            "GPL-2+ (Debian stellarium-data $STEL_VER; landscape by $author)" \
            "Stellarium landscape $desc" "${prep// /_}" "$band" "$sky"
    done <<< "$BACKGROUNDS"
} > "$tmp"

{
    echo "Assets of vidcap synth corpora (not part of the vidcap repository; fetched by"
    echo "scripts/assets_synth.sh). Per-file licenses are in catalogue.tsv."
    echo
    echo "==== tuxpaint-stamps-default $TUX_VER: /usr/share/doc/tuxpaint-stamps-default/copyright"
    cat "$DIR/x/tuxpaint-stamps-default/usr/share/doc/tuxpaint-stamps-default/copyright"
    echo
    echo "==== stellarium-data $STEL_VER: /usr/share/doc/stellarium-data/copyright"
    cat "$DIR/x/stellarium-data/usr/share/doc/stellarium-data/copyright"
    echo
    echo "==== stellarium landscapes used (author lines of landscape.ini)"
    grep -H -E '^author *=' "$DIR/$LANDS"/{grossmugl,guereins,hurricane,garching,ocean,mars,moon}/landscape.ini | sed "s|$DIR/||"
} > "$DIR/LICENSES.txt"

# Keep only the files the catalogue names: the packages unpack to ~1 GB, the picks are ~25 MB.
keep="$DIR/keep.txt"
grep -v '^#' "$tmp" | tail -n +2 | cut -f4 | tr '+' '\n' | sort -u > "$keep"
(cd "$DIR" && find x -type f | sort | comm -23 - "$keep" | xargs -r -d '\n' rm -f)
find "$DIR/x" -type d -empty -delete
rm -rf "$DIR/debs" "$keep"

mv "$tmp" "$CATALOGUE"
trap - EXIT
sprites=$(grep -c '^sprite' "$CATALOGUE")
categories=$(grep '^sprite' "$CATALOGUE" | cut -f2 | sort -u | wc -l)
backgrounds=$(grep -c '^background' "$CATALOGUE")
echo "synth assets: $CATALOGUE: $sprites sprites in $categories categories, $backgrounds backgrounds"
